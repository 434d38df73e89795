//! Configuration changes at the edges: the answer is what HAProxy runs,
//! the file is what HAProxy runs, and a PUT never leaves HAProxy down.
//!
//! Where a test needs `haproxy -c` and HAProxy's master to read one file
//! differently, it gives them different environments (a `${VAR}` or a
//! `.if defined(VAR)` in the file): that is how a configuration passes
//! every check and still fails when HAProxy loads it.

use crate::util::*;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

struct Setup {
    dir: TempDir,
    h: Haproxy,
    lb: Lb,
    be: u16,
}

fn setup(name: &str, global: &str, extra_flags: &[&str]) -> Setup {
    setup_env(name, global, extra_flags, &[], &[])
}

/// HAProxy with `global` lines added to the test configuration and
/// `haproxy_env`; hapgent-lb with `extra_flags` and `lb_env`.
fn setup_env(
    name: &str,
    global: &str,
    extra_flags: &[&str],
    haproxy_env: &[(&str, &str)],
    lb_env: &[(&str, &str)],
) -> Setup {
    let dir = TempDir::new(name);
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start_env(&dir, &config(&dir, fe, be, global, ""), fe, haproxy_env);
    let lb = Lb::start_as(&dir, &h, "api", extra_flags, lb_env);
    Setup { dir, h, lb, be }
}

/// The harness's configuration with `global` lines inserted into its
/// global section and `extra` sections appended.
fn config(dir: &TempDir, fe: u16, be: u16, global: &str, extra: &str) -> String {
    haproxy_config(&dir.0, fe, be, extra).replacen("defaults\n", &format!("{global}defaults\n"), 1)
}

impl Setup {
    fn config(&self, global: &str, extra: &str) -> String {
        config(&self.dir, self.h.fe_port, self.be, global, extra)
    }

    fn etag(&self) -> String {
        let r = self.lb.unix.get("/v1/config");
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("etag").unwrap().to_string()
    }

    fn put(&self, body: &str) -> Reply {
        self.lb.unix.put_config(&self.etag(), body)
    }

    fn file(&self) -> String {
        std::fs::read_to_string(&self.h.config).unwrap()
    }

    /// `show stat`'s weight of web/web1.
    fn weight(&self) -> Option<u32> {
        let stat = cli(&self.h.admin, "show stat").ok()?;
        let header: Vec<&str> = stat
            .lines()
            .next()?
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = header.iter().position(|c| *c == "weight")?;
        stat.lines()
            .find(|l| l.starts_with("web,web1,"))?
            .split(',')
            .nth(col)?
            .parse()
            .ok()
    }

    fn runtime_pid(&self) -> Option<u32> {
        cli(&self.h.admin, "show info")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("Pid: "))?
            .trim()
            .parse()
            .ok()
    }
}

/// Waits until HAProxy answers through its frontend.
fn serving(h: &Haproxy) {
    poll(Duration::from_secs(30), "the frontend serving", || {
        h.get().ok().filter(|r| r.starts_with("HTTP/1.1 200"))
    });
}

fn sha256_of(text: &str) -> String {
    hapgent_lb::routes::sha256(text.as_bytes())
}

/// A backend that `show stat` does not list (disabled), one with a quoted
/// name, one in a `.if 0` block, and a new weight: HAProxy runs the new
/// file, so the answer is 200 and the file stays; the content check that
/// disagrees (the disabled one) is reported, not acted on.
#[test]
fn a_loaded_config_whose_backend_show_stat_omits_is_kept_with_200() {
    let s = setup("disabled", "", &[]);
    assert_eq!(s.weight(), Some(1));
    let body = s
        .config(
            "",
            &format!(
                "backend nb\n    disabled\n    server n1 127.0.0.1:{be}\n\
                 backend \"quoted\"\n    server q1 127.0.0.1:{be}\n\
                 .if 0\nbackend off\n    server o1 127.0.0.1:{be}\n.endif\n",
                be = s.be
            ),
        )
        .replace("check inter 200ms", "weight 77 check inter 200ms");
    let r = s.put(&body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.lb.log_text());
    assert_eq!(s.file(), body, "the file is what HAProxy runs");
    let notes = r.json()["notes"].to_string();
    assert!(notes.contains("no backend named nb ("), "{}", r.text());
    assert_eq!(s.h.backends(), ["web", "quoted"]);
    poll(Duration::from_secs(30), "web1 at weight 77", || {
        (s.weight() == Some(77)).then_some(())
    });
}

/// A reload slower than `reload_timeout` (here one that waits for the
/// test's go-ahead): 504, the file keeps the new configuration, and
/// `GET /v1/config/live` says which configuration runs, before and after.
#[test]
fn a_reload_slower_than_reload_timeout_answers_504_and_live_tells_later() {
    let dir = TempDir::new("slow");
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &config(&dir, fe, be, "", ""), fe);
    let go = dir.join("go");
    let script = dir.join("reload.sh");
    // Returns at once; the reload itself happens when `go` exists (bounded:
    // 60 s, so nothing outlives a failed test for long).
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n(i=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; [ -e {go} ] && kill -USR2 {pid}) </dev/null >/dev/null 2>&1 &\n",
            go = go.display(),
            pid = h.pid()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let master = h.master.to_str().unwrap().to_string();
    let lb = Lb::start(
        &dir,
        &h,
        &[
            "--reload",
            "command",
            "--reload-command",
            script.to_str().unwrap(),
            "--master-socket",
            &master,
            "--reload-timeout",
            "300",
        ],
    );
    let old = std::fs::read_to_string(&h.config).unwrap();
    let body = config(
        &dir,
        fe,
        be,
        "",
        &format!("backend slow\n    server s1 127.0.0.1:{be}\n"),
    );
    let etag = lb
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let r = lb.unix.put_config(&etag, &body);
    assert_eq!(r.status, 504, "{}\n{}", r.text(), lb.log_text());
    assert_eq!(r.json()["sha256"].as_str(), Some(sha256_of(&body).as_str()));
    assert_eq!(
        std::fs::read_to_string(&h.config).unwrap(),
        body,
        "nothing restored"
    );
    assert!(lb.log_text().contains("unknown (504)"), "{}", lb.log_text());
    // The old worker runs the old configuration: not known to hapgent-lb
    // (it did not start it), and certainly not the file.
    let live = lb.unix.get("/v1/config/live").json();
    assert_eq!(live["file_is_live"], false, "{live}");
    assert_ne!(
        live["sha256"].as_str(),
        Some(sha256_of(&body).as_str()),
        "{live}"
    );
    std::fs::write(&go, "").unwrap();
    let live = poll(
        Duration::from_secs(60),
        "the new configuration live",
        || {
            let v = lb.unix.get("/v1/config/live").json();
            (v["sha256"].as_str() == Some(sha256_of(&body).as_str())).then_some(v)
        },
    );
    assert_eq!(live["file_is_live"], true, "{live}");
    assert_ne!(sha256_of(&old), sha256_of(&body));
}

/// `chroot` into a missing directory passes `haproxy -c` and kills the new
/// worker (and with it HAProxy): refused before anything is touched.
#[test]
fn a_chroot_into_a_missing_directory_is_refused_with_422() {
    let s = setup("chroot", "", &[]);
    let old = s.file();
    let workers = s.h.workers();
    let body = s.config("    chroot /nonexistent/hapgent-lb-test\n", "");
    let r = s.put(&body);
    assert_eq!(r.status, 422, "{}\n{}", r.text(), s.lb.log_text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("line 4: the chroot directory /nonexistent/hapgent-lb-test cannot be used"),
        "{error}"
    );
    assert_eq!(s.file(), old);
    assert_eq!(s.h.workers(), workers, "no reload");
    // The same workers still serve (one GET may meet a health check that
    // a loaded machine made late: wait for the answer, bounded).
    serving(&s.h);
}

/// A `bind … transparent` on an address this host does not have (yet):
/// the standby of a keepalived pair, whose VIP comes when it takes over
/// (HAProxy sets IP_FREEBIND, or IP_TRANSPARENT, on such a listener).
/// HAProxy binds it, so the pre-flight must not refuse it. The address is
/// from TEST-NET-1 (192.0.2.0/24): only listened on, never sent to.
#[test]
fn a_transparent_bind_on_an_address_not_on_this_host_is_not_refused() {
    let s = setup("transparent", "", &[]);
    let port = free_port();
    let body = s.config(
        "",
        &format!("frontend vip\n    bind 192.0.2.1:{port} transparent\n    default_backend web\n"),
    );
    let r = s.put(&body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.lb.log_text());
    assert_eq!(s.file(), body);
    serving(&s.h);
}

/// `unix-bind prefix` puts a directory before each Unix socket path of a
/// `bind` line: the pre-flight looks for the directory HAProxy will use,
/// not for the path as written (which need not exist).
#[test]
fn a_unix_bind_under_a_unix_bind_prefix_is_not_refused() {
    let s = setup("unixprefix", "", &[]);
    std::fs::create_dir(s.dir.join("sub")).unwrap();
    let body = s.config(
        &format!("    unix-bind prefix {}\n", s.dir.0.display()),
        "frontend ux\n    bind /sub/x.sock\n    default_backend web\n",
    );
    let r = s.put(&body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.lb.log_text());
    assert!(s.dir.join("sub/x.sock").exists(), "HAProxy's socket");
}

/// A bind on an address another process holds is refused before any
/// reload, so no listener of the running HAProxy is ever paused: not one
/// connection to the unrelated frontend fails meanwhile.
#[test]
fn a_bind_conflict_refuses_no_connection_on_another_frontend() {
    let s = setup("bindload", "", &[]);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let body = s.config(
        "",
        &format!("frontend taken\n    bind 127.0.0.1:{port}\n    default_backend web\n"),
    );
    let load = Load::start(s.h.fe_port, 4);
    poll(Duration::from_secs(30), "the load running", || {
        (load.ok.load(std::sync::atomic::Ordering::SeqCst) > 20).then_some(())
    });
    let replies: Vec<Reply> = (0..3).map(|_| s.put(&body)).collect();
    let before = load.ok.load(std::sync::atomic::Ordering::SeqCst);
    poll(
        Duration::from_secs(30),
        "more requests after the PUTs",
        || (load.ok.load(std::sync::atomic::Ordering::SeqCst) > before + 20).then_some(()),
    );
    let ok = load.ok.load(std::sync::atomic::Ordering::SeqCst);
    let errors = load.finish();
    assert!(
        errors.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        errors.len(),
        ok + errors.len(),
        errors.first()
    );
    for r in replies {
        assert_eq!(r.status, 422, "{}\n{}", r.text(), s.lb.log_text());
    }
    eprintln!("bind conflict under load: {ok} requests, 0 failed");
}

/// A configuration that passes every check but makes HAProxy's master
/// refuse it (here: an unknown keyword in a branch only the master takes):
/// the previous workers keep running, the previous file is restored, 502.
#[test]
fn a_reload_haproxy_refuses_restores_the_file_with_502() {
    let s = setup_env("refused", "", &[], &[], &[("HAPGENT_TEST_CHECKED", "1")]);
    let old = s.file();
    let pid = s.runtime_pid();
    let body = s.config(
        ".if defined(HAPGENT_TEST_CHECKED)\n.else\n    no-such-keyword-for-the-master\n.endif\n",
        "",
    );
    let r = s.put(&body);
    assert_eq!(r.status, 502, "{}\n{}", r.text(), s.lb.log_text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("did not load") || error.contains("counted a failed reload"),
        "{error}"
    );
    assert!(error.contains("previous file was restored"), "{error}");
    assert_eq!(s.file(), old);
    assert_eq!(s.runtime_pid(), pid, "the previous worker still serves");
    serving(&s.h);
}

/// A new worker that dies at start takes HAProxy's master down with it
/// (2.6 and 3.0 alike; 2.6's master may linger, workerless, until its old
/// workers are gone). hapgent-lb restores the previous file, starts HAProxy
/// again with `start_command` (or reloads the lingering master), and says
/// so in the 502.
#[test]
fn a_config_that_kills_haproxy_is_rolled_back_and_haproxy_started_again() {
    let dir = TempDir::new("dies");
    let be = Backend::start().port;
    let fe = free_port();
    let global = "    chroot \"${HAPGENT_TEST_ROOT}\"\n";
    let h = Haproxy::start_env(
        &dir,
        &config(&dir, fe, be, "", ""),
        fe,
        &[("HAPGENT_TEST_ROOT", "/nonexistent/hapgent-lb-test")],
    );
    let pidfile = dir.join("restarted.pid");
    let start = format!(
        "{} -W -D -S {} -p {} -f {}",
        haproxy_bin(),
        h.master.display(),
        pidfile.display(),
        h.config.display()
    );
    let lb = Lb::start_as(
        &dir,
        &h,
        "api",
        &["--start-command", &start, "--reload-timeout", "30000"],
        &[("HAPGENT_TEST_ROOT", "/")],
    );
    /// Kills the HAProxy master hapgent-lb started, by its pidfile's PID.
    struct Restarted(std::path::PathBuf);
    impl Drop for Restarted {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(&self.0)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on the PID of the master this test had
                // hapgent-lb start.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    let _restarted = Restarted(pidfile.clone());
    let old = std::fs::read_to_string(&h.config).unwrap();
    let body = config(&dir, fe, be, global, "");
    let etag = lb
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let r = lb.unix.put_config(&etag, &body);
    assert_eq!(r.status, 502, "{}\n{}", r.text(), lb.log_text());
    let error = r.json()["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("exited"), "{error}");
    eprintln!("{error}");
    // Started again when the master exited; reloaded when it lingered
    // (2.6 waits for its old workers before it exits).
    assert!(
        error.contains("the previous file was restored and HAProxy was started again with it")
            || error.contains("the previous file was restored and HAProxy was reloaded with it"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&h.config).unwrap(), old);
    serving(&h);
    let live = lb.unix.get("/v1/config/live").json();
    assert_eq!(live["file_is_live"], true, "{live}");
}

/// Weights and drain states set at runtime survive a configuration push
/// where the configuration loads them from `server-state-file`.
#[test]
fn runtime_weights_and_drains_survive_a_push_with_a_server_state_file() {
    let dir = TempDir::new("state");
    let be = Backend::start().port;
    let fe = free_port();
    let global = format!("    server-state-file {}/state\n", dir.0.display());
    let with_state = |extra: &str| {
        config(&dir, fe, be, &global, extra).replacen(
            "defaults\n",
            "defaults\n    load-server-state-from-file global\n",
            1,
        )
    };
    let h = Haproxy::start(&dir, &with_state(""), fe);
    let lb = Lb::start(&dir, &h, &[]);
    cli(&h.admin, "set weight web/web1 33").unwrap();
    cli(&h.admin, "set server web/web1 state drain").unwrap();
    let body = with_state(&format!("backend other\n    server o1 127.0.0.1:{be}\n"));
    let etag = lb
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let r = lb.unix.put_config(&etag, &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    assert!(r.json()["notes"].is_null(), "{}", r.text());
    let web1 = lb.unix.get("/v1/backends/web").json()["servers"][0].clone();
    assert_eq!(web1["weight"], 33, "{web1}");
    assert_eq!(web1["admin"], "drain", "{web1}");
}

/// A configuration that loads server state from a file hapgent-lb cannot
/// place (a relative `server-state-file`, no `server-state-base`): the push
/// is applied, and the answer says the runtime weights start over rather
/// than letting them be lost in silence.
#[test]
fn a_server_state_file_hapgent_lb_cannot_place_is_reported() {
    let dir = TempDir::new("state-rel");
    let be = Backend::start().port;
    let fe = free_port();
    let with_state = |extra: &str| {
        config(&dir, fe, be, "    server-state-file state\n", extra).replacen(
            "defaults\n",
            "defaults\n    load-server-state-from-file global\n",
            1,
        )
    };
    let h = Haproxy::start(&dir, &with_state(""), fe);
    let lb = Lb::start(&dir, &h, &[]);
    let body = with_state(&format!("backend other\n    server o1 127.0.0.1:{be}\n"));
    let etag = lb
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let r = lb.unix.put_config(&etag, &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    let notes = r.json()["notes"].to_string();
    assert!(
        notes.contains("cannot tell where the global `server-state-file` is"),
        "{}",
        r.text()
    );
}

/// Sections that make HAProxy run programs are refused unless
/// `allow_exec_sections` is set.
#[test]
fn exec_sections_are_refused_unless_allowed() {
    let s = setup("exec", "", &[]);
    let old = s.file();
    for (global, extra) in [
        ("", "program evil\n    command /bin/true\n"),
        ("    external-check\n    insecure-fork-wanted\n", ""),
        ("    lua-load /nonexistent.lua\n", ""),
        ("    setenv LD_PRELOAD /tmp/x.so\n", ""),
    ] {
        let r = s.put(&s.config(global, extra));
        assert_eq!(r.status, 422, "{global}{extra}: {}", r.text());
        assert!(
            r.text().contains("allow_exec_sections is false"),
            "{}",
            r.text()
        );
        assert_eq!(s.file(), old);
    }
    let allowed = setup("exec-allowed", "", &["--allow-exec-sections"]);
    let r = allowed.put(&allowed.config("    external-check\n", ""));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), allowed.lb.log_text());
}

/// The last-known-good copy keeps haproxy.cfg's mode, and `haproxy -c`
/// reads a candidate only hapgent-lb's user can read.
#[test]
fn copies_of_the_config_are_no_more_readable_than_the_config() {
    let dir = TempDir::new("modes");
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &config(&dir, fe, be, "", ""), fe);
    std::fs::set_permissions(&h.config, std::fs::Permissions::from_mode(0o640)).unwrap();
    // A haproxy_bin that notes the mode of the file it checks.
    let seen = dir.join("candidate-mode");
    let wrapper = dir.join("haproxy-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a; do case \"$a\" in *candidate*) stat -c %a \"$a\" > {};; esac; done\nexec {} \"$@\"\n",
            seen.display(),
            haproxy_bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lb = Lb::start(&dir, &h, &["--haproxy-bin", wrapper.to_str().unwrap()]);
    let etag = lb
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let body = config(
        &dir,
        fe,
        be,
        "",
        &format!("backend m\n    server m1 127.0.0.1:{be}\n"),
    );
    let r = lb.unix.put_config(&etag, &body);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), lb.log_text());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let last_good = dir.join("haproxy.cfg.last-good");
    assert_eq!(mode(&last_good), 0o640);
    assert_eq!(mode(&h.config), 0o640);
    assert_eq!(std::fs::read_to_string(&seen).unwrap().trim(), "600");
}

/// Two `serve` processes on one haproxy.cfg: while one is changing it
/// (here held inside `haproxy -c` until the test lets go), the other
/// answers 409 and changes nothing.
#[test]
fn two_serve_processes_never_change_the_file_at_once() {
    let dir = TempDir::new("twolb");
    let be = Backend::start().port;
    let fe = free_port();
    let h = Haproxy::start(&dir, &config(&dir, fe, be, "", ""), fe);
    let go = dir.join("go");
    let inside = dir.join("inside");
    let wrapper = dir.join("haproxy-held");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntouch {inside}\ni=0; while [ ! -e {go} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\nexec {bin} \"$@\"\n",
            inside = inside.display(),
            go = go.display(),
            bin = haproxy_bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let first = Lb::start_as(
        &dir,
        &h,
        "first",
        &["--haproxy-bin", wrapper.to_str().unwrap()],
        &[],
    );
    let second = Lb::start_as(&dir, &h, "second", &[], &[]);
    let etag = first
        .unix
        .get("/v1/config")
        .header("etag")
        .unwrap()
        .to_string();
    let one = config(
        &dir,
        fe,
        be,
        "",
        &format!("backend one\n    server a 127.0.0.1:{be}\n"),
    );
    let two = config(
        &dir,
        fe,
        be,
        "",
        &format!("backend two\n    server b 127.0.0.1:{be}\n"),
    );
    std::thread::scope(|scope| {
        let api = first.unix.clone();
        let (etag1, one1) = (etag.clone(), one.clone());
        let held = scope.spawn(move || api.put_config(&etag1, &one1));
        poll(
            Duration::from_secs(30),
            "the first change inside haproxy -c",
            || inside.exists().then_some(()),
        );
        let r = second.unix.put_config(&etag, &two);
        assert_eq!(r.status, 409, "{}\n{}", r.text(), second.log_text());
        std::fs::write(&go, "").unwrap();
        let r = held.join().unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.text(), first.log_text());
    });
    assert_eq!(std::fs::read_to_string(&h.config).unwrap(), one);
}
