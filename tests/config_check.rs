//! `sluice -bV` / `sluice config --check` through the built binary: the
//! whole configuration (values, relay networks, routers and transports) is
//! built at load, and a mistake exits 78 (EX_CONFIG) with one message on
//! stderr that names the file and the key.

mod common;

use std::path::PathBuf;

use common::{Dir, assert_exit};

/// sysexits.h EX_CONFIG.
const EX_CONFIG: i32 = 78;

/// Writes `text` as `sluice.toml` in the test directory; returns its path.
fn config_file(d: &Dir, text: &str) -> PathBuf {
    let path = d.path().join("sluice.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// Runs `sluice --config FILE ARGS` with `text` as FILE.
fn check(d: &Dir, text: &str, args: &[&str]) -> std::process::Output {
    let path = config_file(d, text);
    let path = path.to_str().expect("UTF-8 path");
    let mut all = vec!["--config", path];
    all.extend_from_slice(args);
    d.run(&all, b"")
}

const VALID: &str = r#"
relay_from_hosts = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
message_id_format = "classic"

[queue]
retry = "F,1h,10m; F,1d,1h"

[[router]]
name = "system_aliases"
driver = "redirect"
domains = ["+local_domains"]
file = "aliases"

[[router]]
name = "local_user"
driver = "accept"
domains = ["+local_domains"]
transport = "maildir_delivery"

[[transport]]
name = "maildir_delivery"
driver = "maildir"
path = "mail/{domain}/{local}"
"#;

#[test]
fn a_valid_file_passes() {
    let d = Dir::new();
    for args in [&["-bV"][..], &["config", "--check"][..]] {
        let out = check(&d, VALID, args);
        assert_exit(&out, 0);
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "--check prints nothing");
    }
}

#[test]
fn a_bad_relay_network_names_the_key_and_the_file() {
    let d = Dir::new();
    for args in [&["-bV"][..], &["config", "--check"][..]] {
        let out = check(&d, "relay_from_hosts = [\"10.0.0/8\"]\n", args);
        assert_exit(&out, EX_CONFIG);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sluice.toml"), "{err}");
        assert!(err.contains("`relay_from_hosts`"), "{err}");
        assert!(err.contains("\"10.0.0/8\""), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn a_router_with_a_missing_transport_names_both() {
    let d = Dir::new();
    let text = VALID.replace("transport = \"maildir_delivery\"", "transport = \"nope\"");
    let out = check(&d, &text, &["-bV"]);
    assert_exit(&out, EX_CONFIG);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sluice.toml"), "{err}");
    assert!(
        err.contains(r#"router[2] "local_user": transport "nope" is not defined"#),
        "{err}"
    );
}

#[test]
fn other_mistakes_are_found_at_load() {
    let d = Dir::new();
    // (what is changed in VALID, what stderr must say)
    let cases = [
        (
            ("driver = \"accept\"", "driver = \"dnslookup\""),
            r#"router[2] "local_user": transport "maildir_delivery" is not an smtp transport"#,
        ),
        (
            ("driver = \"maildir\"", "driver = \"maildir\"\nmode = 600"),
            r#"transport[1] "maildir_delivery": unknown field `mode`"#,
        ),
        (
            (
                "driver = \"maildir\"",
                "driver = \"maildir\"\ntls = \"verify\"",
            ),
            r#"transport[1] "maildir_delivery": `tls` is an option of the smtp driver only"#,
        ),
        (
            (
                "driver = \"maildir\"\npath = \"mail/{domain}/{local}\"",
                "driver = \"smtp\"\nauth_credentials_file = \"/etc/passwd\"",
            ),
            r#"transport[1] "maildir_delivery": key `auth_credentials_file`: credentials are sent only over TLS whose certificate and host name verified: set tls = "verify""#,
        ),
        (
            (
                "driver = \"maildir\"\npath = \"mail/{domain}/{local}\"",
                "driver = \"smtp\"\nhelo_data = \"localhost\"",
            ),
            r#"transport[1] "maildir_delivery": key `helo_data`: "localhost" is not a fully qualified domain name"#,
        ),
        (
            // A pipe from the system aliases would run as nobody in
            // particular: the transport names no user, the router checks
            // no local user.
            (
                "file = \"aliases\"",
                "file = \"aliases\"\npipe_transport = \"address_pipe\"\n\n[[transport]]\nname = \"address_pipe\"\ndriver = \"pipe\"",
            ),
            r#"router[1] "system_aliases": pipes from this router would run as nobody in particular"#,
        ),
        (
            (
                "file = \"aliases\"",
                "file = \"aliases\"\npipe_transport = \"address_pipe\"\n\n[[transport]]\nname = \"address_pipe\"\ndriver = \"pipe\"\nuser = \"root\"",
            ),
            "a pipe never runs as root",
        ),
        (
            (
                "message_id_format = \"classic\"",
                "message_id_format = \"short\"",
            ),
            "key `message_id_format`",
        ),
        (
            (
                "retry = \"F,1h,10m; F,1d,1h\"",
                "retry = \"F,1d,1h; F,1h,10m\"",
            ),
            "key `queue.retry`",
        ),
    ];
    for ((from, to), want) in cases {
        let out = check(&d, &VALID.replace(from, to), &["-bV"]);
        assert_exit(&out, EX_CONFIG);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("sluice.toml"), "{err}");
        assert!(err.contains(want), "{to}: {err}");
    }
}
