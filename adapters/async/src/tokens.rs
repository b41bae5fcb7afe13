//! Lock tokens drawn from the OS CSPRNG a few dozen at a time.
//!
//! One `getrandom` call per acquire was about 4% of the client's CPU at 1 node, C=32 (the
//! system call and the kernel's CSPRNG set-up dominate the 20 bytes it returns). A client
//! keeps one pool: each token is still 20 bytes straight from the OS, read ahead of use.
//!
//! The pool belongs to one client, never to a thread: a process that forks copies a
//! thread-local buffer into the child, which would then draw the parent's next tokens (two
//! holders, one token). A client's pool is only drawn from by that client's callers, whose
//! driver does not survive a fork.

use redlock_core::Token;
use std::sync::Mutex;

/// The bytes of one token.
const TOKEN_BYTES: usize = 20;
/// Tokens read per `getrandom` call.
const PER_READ: usize = 64;

/// A client's tokens, read from the OS ahead of use.
pub(crate) struct Tokens(Mutex<Pool>);

struct Pool {
    random: [u8; TOKEN_BYTES * PER_READ],
    /// The first unused byte; `random.len()` when empty.
    next: usize,
    /// `getrandom` calls so far.
    #[cfg(test)]
    reads: u64,
}

impl Tokens {
    pub(crate) fn new() -> Tokens {
        Tokens(Mutex::new(Pool {
            random: [0; TOKEN_BYTES * PER_READ],
            next: TOKEN_BYTES * PER_READ,
            #[cfg(test)]
            reads: 0,
        }))
    }

    /// A fresh token: unguessable and unique across every client.
    ///
    /// # Panics
    ///
    /// When the OS entropy source fails: a weaker fallback could give two holders one token.
    pub(crate) fn draw(&self) -> Token {
        // Nothing under the lock can panic but `getrandom`'s failure, after which the pool
        // is refilled again on the next draw.
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pool.next == pool.random.len() {
            getrandom::fill(&mut pool.random).expect("the OS random number generator failed");
            pool.next = 0;
            #[cfg(test)]
            {
                pool.reads += 1;
            }
        }
        let at = pool.next;
        pool.next += TOKEN_BYTES;
        let bytes = &mut pool.random[at..at + TOKEN_BYTES];
        let token = Token::from_random(bytes).expect("20 bytes is long enough");
        // A token handed out leaves no copy behind.
        bytes.fill(0);
        token
    }

    #[cfg(test)]
    fn reads(&self) -> u64 {
        self.0.lock().unwrap().reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reads_the_os_once_per_pool_and_never_hands_out_a_token_twice() {
        let tokens = Tokens::new();
        assert_eq!(tokens.reads(), 0, "nothing is read before the first draw");
        let drawn: Vec<Token> = (0..3 * PER_READ + 1).map(|_| tokens.draw()).collect();
        assert_eq!(tokens.reads(), 4, "one read per {PER_READ} tokens");
        let distinct: HashSet<&Token> = drawn.iter().collect();
        assert_eq!(distinct.len(), drawn.len(), "every token is new");
        assert!(drawn.iter().all(|t| t.as_str().len() == 2 * TOKEN_BYTES));
    }

    #[test]
    fn a_drawn_token_leaves_no_copy_in_the_pool() {
        let tokens = Tokens::new();
        let _ = tokens.draw();
        let _ = tokens.draw();
        let pool = tokens.0.lock().unwrap();
        assert_eq!(pool.next, 2 * TOKEN_BYTES);
        assert!(pool.random[..pool.next].iter().all(|b| *b == 0));
        assert!(
            pool.random[pool.next..].iter().any(|b| *b != 0),
            "the rest is still unused random bytes"
        );
    }

    #[test]
    fn two_clients_draw_different_tokens() {
        let (a, b) = (Tokens::new(), Tokens::new());
        let a: HashSet<Token> = (0..PER_READ).map(|_| a.draw()).collect();
        assert!((0..PER_READ).all(|_| !a.contains(&b.draw())));
    }
}
