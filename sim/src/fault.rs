//! Injected faults: rules that make a node fail, hang, close or garble particular commands.

use crate::script::ScriptKind;
use crate::value::Value;
use bytes::Bytes;

/// Which commands a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Every command.
    Any,
    /// Commands with this name (case-insensitive), e.g. `"EVAL"` or `"INFO"`.
    Command(String),
    /// `EVAL` / `EVALSHA` of a script the node knows as this kind (cached or not).
    Script(ScriptKind),
}

/// What a [`Fault`] does to a matching command instead of (or after) running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Do not run the command; reply with this value (e.g. `Value::error("BUSY ...")`).
    Reply(Value),
    /// Do not run the command; write these raw bytes as the reply (garbage, a wrong type, …).
    Raw(Bytes),
    /// Do not run the command; never reply to it or anything after it on this connection
    /// (a lost request on a stuck connection).
    Hang,
    /// Run the command, then hang: its effect happens but no reply ever arrives.
    ExecuteThenHang,
    /// Do not run the command; close the connection (replies to earlier commands are still
    /// returned).
    Close,
    /// Run the command, then close the connection without replying.
    ExecuteThenClose,
    /// Write this value first (typically a [`Value::Push`]), then run the command and reply as
    /// usual.
    Before(Value),
}

/// A rule injected with [`Node::inject`](crate::Node::inject): the first rule that matches a
/// command decides its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Which commands it applies to.
    pub matches: Match,
    /// What it does.
    pub action: FaultAction,
    /// Let this many matching commands through untouched first.
    pub skip: u32,
    /// Apply to this many matching commands, then retire; `None` applies forever.
    pub times: Option<u32>,
}

impl Fault {
    /// A rule applying `action` to every command matching `matches`, forever.
    pub fn new(matches: Match, action: FaultAction) -> Fault {
        Fault {
            matches,
            action,
            skip: 0,
            times: None,
        }
    }

    /// The same rule, applied only `n` times.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    /// The same rule, letting the first `n` matching commands through.
    pub fn skip(mut self, n: u32) -> Fault {
        self.skip = n;
        self
    }
}

/// A node's fault rules, in the order injected.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults(Vec<Fault>);

impl Faults {
    /// Adds a rule after the others.
    pub(crate) fn push(&mut self, fault: Fault) {
        self.0.push(fault);
    }

    /// Removes every rule.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// What happens to a command called `name` (upper case), which runs a script of kind
    /// `script` if any: the first live matching rule's action, counting the command against
    /// that rule's `skip` and `times`; `None` when it runs untouched.
    pub(crate) fn take_for(
        &mut self,
        name: &[u8],
        script: Option<ScriptKind>,
    ) -> Option<FaultAction> {
        let i = self.0.iter().position(|f| {
            let hit = match &f.matches {
                Match::Any => true,
                Match::Command(c) => c.as_bytes().eq_ignore_ascii_case(name),
                Match::Script(k) => script == Some(*k),
            };
            hit && f.times != Some(0)
        })?;
        let fault = &mut self.0[i];
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Some(t) = &mut fault.times {
            *t -= 1;
        }
        let action = fault.action.clone();
        if fault.times == Some(0) {
            self.0.remove(i);
        }
        Some(action)
    }
}
