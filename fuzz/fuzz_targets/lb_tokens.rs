//! hapgent-lb's `token_file` (`NAME:TOKEN` or `TOKEN` lines) and the
//! `Authorization` header checked against it on the TCP listener (scheme
//! `Bearer`, any case).
//!
//! Input: the token file, then optionally a line `%%` and the header value.
#![no_main]

use hapgent_fuzz::split2;
use hapgent_lb::access::{check_token, parse_tokens};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (file, header) = split2(data, b"\n%%\n");
    let (Ok(file), Ok(header)) = (std::str::from_utf8(file), std::str::from_utf8(header)) else {
        return;
    };
    let tokens = parse_tokens(file);
    // The token lines as documented: blank and `#` lines skipped, the
    // secret after the first `:` when both sides are non-empty, spaces
    // around the `:` not part of either.
    let lines: Vec<&str> = file
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    // Property "one token per line".
    assert_eq!(tokens.len(), lines.len());
    for (i, line) in lines.iter().enumerate() {
        let split = line
            .split_once(':')
            .map(|(n, s)| (n.trim_end(), s.trim_start()));
        let (name, secret) = match split {
            Some((n, s)) if !n.is_empty() && !s.is_empty() => (n.to_string(), s),
            _ => (format!("token#{}", i + 1), *line),
        };
        assert_eq!(tokens[i].name, name);
        // Property "every token authenticates": presenting a line's secret
        // as a bearer token is accepted, as the first token with that
        // secret.
        let first = lines[..=i].iter().enumerate().find_map(|(j, l)| {
            let s = match l
                .split_once(':')
                .map(|(n, s)| (n.trim_end(), s.trim_start()))
            {
                Some((n, s)) if !n.is_empty() && !s.is_empty() => s,
                _ => l,
            };
            (s.trim() == secret.trim()).then(|| tokens[j].name.clone())
        });
        let got = check_token(&tokens, Some(&format!("Bearer {secret}")));
        assert_eq!(got, first, "line {line:?}");
        // Property "the scheme is case-insensitive" (RFC 7235).
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let again = check_token(&tokens, Some(&format!("{scheme} {secret}")));
            assert_eq!(again, first, "line {line:?}, scheme {scheme}");
        }
    }
    // Property "only a listed secret authenticates".
    if let Some(name) = check_token(&tokens, Some(header)) {
        assert!(tokens.iter().any(|t| t.name == name));
        let (scheme, presented) = header.split_once(' ').unwrap();
        assert!(scheme.eq_ignore_ascii_case("bearer"), "{header:?}");
        assert!(!presented.trim().is_empty());
    }
});
