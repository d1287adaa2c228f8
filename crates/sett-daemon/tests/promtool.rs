//! Every metric of the contract, recorded once with its documented labels and rendered by the
//! exporter the daemons use, passes Prometheus' own linter (`promtool check metrics`, Debian
//! package `prometheus`): HELP text, TYPE, units and suffixes. The end-to-end test
//! `observability_metrics_logs_and_export_after_the_demo_workflow` lints live endpoints too.

use metrics_exporter_prometheus::PrometheusBuilder;
use sett_core::metrics::{ALL, Kind};
use sett_testkit::promtool::check_metrics as promtool_check;

#[test]
fn every_metric_passes_promtool_check_metrics() {
    let recorder = PrometheusBuilder::new().set_buckets(&[0.1, 1.0]).unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        sett_daemon::telemetry::describe(ALL);
        for m in ALL {
            let labels = [("component", "orchestrator"), ("agent", "Writer")];
            match m.kind {
                Kind::Counter => metrics::counter!(m.name, &labels).increment(1),
                Kind::Gauge => metrics::gauge!(m.name, &labels).set(1.0),
                Kind::Histogram => metrics::histogram!(m.name, &labels).record(0.5),
            }
        }
    });
    let text = handle.render();
    for m in ALL {
        assert!(text.contains(&format!("# HELP {} {}\n", m.name, m.help)), "no HELP for {}:\n{text}", m.name);
    }
    let (code, said) = promtool_check(&text);
    assert_eq!((code, said.trim()), (0, ""), "promtool check metrics on:\n{text}");
}

/// The linter is real: a metric without HELP and a counter without `_total` are reported.
#[test]
fn promtool_rejects_what_the_contract_avoids() {
    let (code, said) = promtool_check("# TYPE sett_bad counter\nsett_bad 1\n");
    assert_ne!(code, 0);
    assert!(said.contains("no help text") && said.contains("_total"), "{said}");
}
