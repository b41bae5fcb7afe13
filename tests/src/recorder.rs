//! A `metrics` recorder that keeps everything in memory, for tests that check what the client
//! records: counters summed and histogram samples kept, per name and label set, plus the units
//! the metrics were described with.
//!
//! A process has one global recorder: install it with [`Recorded::install`] once, in a test
//! binary of its own.

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// One metric: its name and its labels, sorted.
pub type Series = (String, BTreeMap<String, String>);

/// What has been recorded so far.
#[derive(Debug, Default)]
pub struct Recorded {
    counters: Mutex<HashMap<Series, u64>>,
    histograms: Mutex<HashMap<Series, Vec<f64>>>,
    units: Mutex<HashMap<String, Option<Unit>>>,
}

fn series(key: &Key) -> Series {
    let labels = key
        .labels()
        .map(|l| (l.key().to_string(), l.value().to_string()))
        .collect();
    (key.name().to_string(), labels)
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (name.to_string(), labels)
}

impl Recorded {
    /// Installs a recorder writing here as the process's global recorder (once per process;
    /// later calls return the same store).
    ///
    /// # Panics
    ///
    /// When another global recorder was installed first.
    pub fn install() -> Arc<Recorded> {
        static STORE: OnceLock<Arc<Recorded>> = OnceLock::new();
        STORE
            .get_or_init(|| {
                let store = Arc::new(Recorded::default());
                metrics::set_global_recorder(Memory(store.clone()))
                    .expect("no other global recorder in this test binary");
                store
            })
            .clone()
    }

    /// The counter `name` with exactly `labels` (0 when never incremented).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.get(&labelled(name, labels)).copied().unwrap_or(0)
    }

    /// Every series of counter `name` with its value.
    pub fn counters_named(&self, name: &str) -> Vec<(BTreeMap<String, String>, u64)> {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, labels), v)| (labels.clone(), *v))
            .collect()
    }

    /// The samples of histogram `name` with exactly `labels`, in the order recorded.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        histograms
            .get(&labelled(name, labels))
            .cloned()
            .unwrap_or_default()
    }

    /// The unit `name` was described with: `None` when never described, `Some(None)` when
    /// described without a unit.
    pub fn unit(&self, name: &str) -> Option<Option<Unit>> {
        let units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        units.get(name).copied()
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>) {
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        units.insert(key.as_str().to_string(), unit);
    }
}

/// The recorder: hands out handles that write into one [`Recorded`].
struct Memory(Arc<Recorded>);

/// A handle to one series.
struct Cell {
    store: Arc<Recorded>,
    series: Series,
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        let mut counters = self
            .store
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *counters.entry(self.series.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        let mut counters = self
            .store
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counters.insert(self.series.clone(), value);
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        let mut histograms = self
            .store
            .histograms
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        histograms
            .entry(self.series.clone())
            .or_default()
            .push(value);
    }
}

impl Memory {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        Arc::new(Cell {
            store: self.0.clone(),
            series: series(key),
        })
    }
}

impl Recorder for Memory {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.0.describe(key, unit);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _description: SharedString) {
        self.0.describe(key, unit);
    }

    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }

    fn register_gauge(&self, _key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        // The client records no gauges.
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}
