//! `GET /metrics`: Prometheus scrapes it without a token, and it counts
//! what configuration changes did.

use crate::util::*;
use std::net::SocketAddr;

/// The value of the series `name` (with its labels, as written) in a
/// metrics text.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `haproxy -c` (run by hapgent-lb) sees `HAPGENT_TEST_CHECKED`, HAProxy's
/// master does not: a `.if defined(…)` block makes a file pass every check
/// and still fail at the reload.
#[test]
fn metrics_are_served_without_a_token_and_count_changes_and_reloads() {
    let dir = TempDir::new("metrics");
    let be = Backend::start().port;
    let fe = free_port();
    let config = |global: &str| {
        haproxy_config(&dir.0, fe, be, "").replacen("defaults\n", &format!("{global}defaults\n"), 1)
    };
    let h = Haproxy::start(&dir, &config(""), fe);
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "ci:right-token\n").unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (listen, token_file) = (addr.to_string(), tokens.display().to_string());
    let lb = Lb::start_as(
        &dir,
        &h,
        "api",
        &["--listen-tcp", &listen, "--token-file", &token_file],
        &[("HAPGENT_TEST_CHECKED", "1")],
    );
    let tcp = Api::Tcp(addr);
    let scrape = || {
        let r = tcp.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        r.text()
    };

    let first = scrape();
    assert_eq!(
        value(&first, "hapgent_lb_reloads_total{outcome=\"live\"}"),
        0.0
    );
    assert!(value(&first, "hapgent_lb_start_time_seconds") > 1.6e9);
    // Only /metrics is open: everything else still needs the token.
    assert_eq!(tcp.get("/v1/backends").status, 401);
    assert_eq!(tcp.request("POST", "/metrics", &[], b"").status, 401);
    let authorized = tcp.request(
        "POST",
        "/metrics",
        &["Authorization: Bearer right-token"],
        b"",
    );
    assert_eq!(authorized.status, 405);
    assert_eq!(
        lb.unix.get("/metrics").status,
        200,
        "on the Unix socket too"
    );

    let etag = || {
        lb.unix
            .get("/v1/config")
            .header("etag")
            .unwrap()
            .to_string()
    };
    let good = config("    maxconn 999\n");
    let r = lb.unix.put_config(&etag(), &good);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    let refused = config(
        ".if defined(HAPGENT_TEST_CHECKED)\n.else\n    no-such-keyword-for-the-master\n.endif\n",
    );
    let r = lb.unix.put_config(&etag(), &refused);
    assert_eq!(r.status, 502, "{}\n{}", r.text(), lb.log_text());
    let r = lb.unix.put_config("\"stale\"", &good);
    assert_eq!(r.status, 412, "{}", r.text());

    let after = scrape();
    for (series, want) in [
        ("hapgent_lb_config_changes_total{result=\"applied\"}", 1.0),
        (
            "hapgent_lb_config_changes_total{result=\"rolled_back\"}",
            1.0,
        ),
        ("hapgent_lb_config_changes_total{result=\"refused\"}", 1.0),
        ("hapgent_lb_config_changes_total{result=\"failed\"}", 0.0),
        ("hapgent_lb_reloads_total{outcome=\"live\"}", 1.0),
        ("hapgent_lb_reloads_total{outcome=\"failed\"}", 1.0),
        ("hapgent_lb_reloads_total{outcome=\"down\"}", 0.0),
        ("hapgent_lb_reload_duration_seconds_count", 2.0),
        (
            "hapgent_lb_reload_duration_seconds_bucket{le=\"+Inf\"}",
            2.0,
        ),
    ] {
        assert_eq!(value(&after, series), want, "{series}\n{after}");
    }
    let success = value(&after, "hapgent_lb_last_reload_success_timestamp_seconds");
    let last = value(&after, "hapgent_lb_last_reload_timestamp_seconds");
    assert!(success > 1.6e9 && last >= success, "{success} {last}");
    assert!(value(&after, "hapgent_lb_reload_duration_seconds_sum") > 0.0);
}
