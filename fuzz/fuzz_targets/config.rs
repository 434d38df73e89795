//! The configuration of both binaries: a TOML file and `HAPGENT_*` /
//! `HAPGENT_LB_*` environment variables, layered over the defaults
//! (figment, through `hapgent_common::layer`).
//!
//! Input: the TOML file, then optionally a line `%%env` and `NAME=VALUE`
//! lines. Both loaders read every input; each refuses the other's keys.
#![no_main]

use hapgent_fuzz::split2;
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A private directory for the file the loaders read (they take a path).
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("hapgent-fuzz-config.{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fn write(name: &str, text: &str) -> PathBuf {
    let path = dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fuzz_target!(|data: &[u8]| {
    let (file, env) = split2(data, b"\n%%env\n");
    let Ok(file) = std::str::from_utf8(file) else {
        return;
    };
    let env: Vec<(String, String)> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let path = write("input.toml", file);
    let missing = dir().join("missing.toml");

    let inputs = hapgent::config::Inputs {
        config_flag: Some(path.clone()),
        default_file: missing.clone(),
        env: env.clone(),
        flags: Vec::new(),
    };
    if let Ok(loaded) = hapgent::config::load(&inputs) {
        // Property "no empty allow-list": `allow` is unset (everyone) or
        // lists at least one range; an empty list is refused.
        assert!(
            loaded.config.allow.as_ref().is_none_or(|a| !a.is_empty()),
            "{:?}",
            loaded.config.allow
        );
        // Property "the control socket replaces no file of ours": it is
        // never the path of the state file or a flag file.
        let c = &loaded.config;
        let socket = &c.control_socket;
        if !socket.as_os_str().is_empty() {
            let mut files = vec![
                Some(&c.state_file),
                c.drain_file.as_ref(),
                c.maint_file.as_ref(),
            ];
            for s in c.services.values() {
                files.extend([
                    Some(&s.state_file),
                    s.drain_file.as_ref(),
                    s.maint_file.as_ref(),
                ]);
            }
            assert!(!files.contains(&Some(socket)), "{socket:?}");
        }
        // Property "check-config round trip": what `hapgent check-config`
        // prints is a configuration file that loads as the same
        // configuration.
        let described = loaded.describe();
        let again = hapgent::config::Inputs {
            config_flag: Some(write("described.toml", &described)),
            default_file: missing.clone(),
            env: Vec::new(),
            flags: Vec::new(),
        };
        match hapgent::config::load(&again) {
            Ok(l) => assert_eq!(l.config, loaded.config, "{described}"),
            Err(e) => panic!("check-config output does not load: {e}\n{described}"),
        }
    }

    let inputs = hapgent_lb::config::Inputs {
        config_flag: Some(path),
        default_file: missing.clone(),
        env,
        flags: Vec::new(),
    };
    if let Ok(loaded) = hapgent_lb::config::load(&inputs) {
        // Property "check-config round trip", for hapgent-lb.
        let described = loaded.describe();
        let again = hapgent_lb::config::Inputs {
            config_flag: Some(write("described.toml", &described)),
            default_file: missing,
            env: Vec::new(),
            flags: Vec::new(),
        };
        match hapgent_lb::config::load(&again) {
            Ok(l) => assert_eq!(l.config, loaded.config, "{described}"),
            Err(e) => panic!("check-config output does not load: {e}\n{described}"),
        }
    }
});
