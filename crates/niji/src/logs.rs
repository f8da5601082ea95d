//! The binary's logs: JSON lines on standard error, chosen by `NIJI_LOG`, and never a line of
//! the linear-programming solver of output checking (`microlp`, through the `log` crate): its
//! debug lines print objective values and bounds made from persons counts. Nor is the message
//! of a panic inside that solver written (output checking catches it and goes on): only where it
//! happened.

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// The target prefix of the solver's log lines.
const SOLVER_TARGET: &str = "microlp";

/// The subscriber the binary installs: `filter` (from `NIJI_LOG`) over JSON lines to `writer`,
/// the solver's lines dropped whatever `filter` asks for.
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let logs = tracing_subscriber::fmt().with_env_filter(filter).json().with_writer(writer).finish();
    logs.with(tracing_subscriber::filter::filter_fn(not_the_solver))
}

fn not_the_solver(meta: &Metadata<'_>) -> bool {
    !meta.target().starts_with(SOLVER_TARGET)
}

/// Wraps the panic hook so that a panic while the solver runs on this thread (in the solver or
/// in a crate it calls) writes only where it happened.
pub fn hide_solver_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !niji_sdc::solver_running() {
            return default_hook(info);
        }
        match info.location() {
            Some(at) => eprintln!("the output checking solver failed at {}:{} (its message is not written)", at.file(), at.line()),
            None => eprintln!("the output checking solver failed (its message is not written)"),
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use niji_sdc::{Cell, Measure, Preset, Rules, Table};
    use niji_testkit::logs::Captured as Lines;

    /// A sparse three-way table (34 of 48 combinations) whose small cells no cube protects:
    /// output checking puts them on null vectors found by the solver.
    fn sparse_table() -> Table {
        let cells = "a0b0c0 35 a0b0c1 6 a0b1c0 21 a0b1c2 7 a0b2c1 3 a0b2c2 210 a0b3c0 242 a0b3c2 125 a1b0c1 178 a1b0c2 233 \
            a1b1c1 73 a1b1c2 189 a1b2c0 246 a1b2c1 165 a1b2c2 6 a1b3c0 5 a1b3c1 43 a2b0c0 98 a2b0c1 257 a2b1c0 7 a2b1c1 221 \
            a2b1c2 75 a2b2c0 136 a2b2c2 10 a2b3c2 191 a3b0c0 4 a3b0c2 136 a3b1c0 7 a3b1c1 280 a3b2c0 75 a3b2c1 245 \
            a3b2c2 112 a3b3c1 113 a3b3c2 260";
        let mut table = Table::new(["a", "b", "c"], vec![Measure::count("persons")]);
        let words: Vec<&str> = cells.split_whitespace().collect();
        for pair in words.chunks(2) {
            let keys = [&pair[0][0..2], &pair[0][2..4], &pair[0][4..6]];
            table.push(keys, vec![Cell::count(pair[1].parse().expect("a count"))]);
        }
        table
    }

    /// Output checking of that table with every level of logs asked for: the solver's lines
    /// reach a plain subscriber (so it did log), and none reaches the binary's, which still
    /// writes everyone else's.
    #[test]
    fn the_solver_never_logs_whatever_niji_log_asks() {
        // Another test may have installed it (a subscriber's `init` does): either way, the plain
        // subscriber below shows that the solver's records arrive.
        let _ = tracing_log::LogTracer::init();
        let run = |subscriber: &dyn Fn(Lines) -> tracing::Dispatch| {
            let lines = Lines::default();
            tracing::dispatcher::with_default(&subscriber(lines.clone()), || {
                niji_sdc::check(&sparse_table(), &Rules::preset(Preset::Acro)).expect("the table is checked");
                tracing::info!(target: "niji::query", "checked");
            });
            lines.text()
        };
        let plain = run(&|lines| {
            tracing_subscriber::fmt().with_env_filter(EnvFilter::new("trace")).json().with_writer(move || lines.clone()).finish().into()
        });
        assert!(plain.contains(r#""target":"microlp"#), "the solver logs (else this test shows nothing)");
        let ours = run(&|lines| subscriber(EnvFilter::new("trace"), move || lines.clone()).into());
        assert!(!ours.contains("microlp"), "a solver line was written");
        assert!(ours.contains(r#""target":"niji::query""#), "other lines are written");
    }
}
