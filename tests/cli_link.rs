//! `link=veth` from the command line: without CAP_NET_ADMIN a case is skipped with the
//! reason (never run over loopback instead), and where SOCKLAB_REQUIRE_PRIVILEGED=1 the
//! skip is an error; with the capabilities the README's `setcap` line gives, an
//! unprivileged user runs it.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;
use socklab_harness::privilege::{Capability, REQUIRE_PRIVILEGED_VAR};

/// `socklab ARGS` without CAP_NET_ADMIN: through `setpriv` when this process holds it,
/// as it is otherwise. `None` when it holds it and setpriv is not installed.
fn socklab_without_net_admin(args: &[&str]) -> Option<Command> {
    let binary = Command::cargo_bin("socklab").unwrap().get_program().to_owned();
    let mut command = if Capability::NetAdmin.held() {
        let setpriv = Command::new("setpriv").arg("--version").output();
        if setpriv.is_err() {
            eprintln!("skipping: CAP_NET_ADMIN cannot be dropped without setpriv (util-linux)");
            return None;
        }
        let mut command = Command::new("setpriv");
        command.args(["--bounding-set", "-net_admin"]).arg(binary);
        command
    } else {
        Command::new(binary)
    };
    command.args(args).env("NO_COLOR", "1").env_remove(REQUIRE_PRIVILEGED_VAR);
    Some(command)
}

#[test]
fn without_cap_net_admin_a_veth_case_is_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out_text = out.to_str().unwrap();
    let args = ["run", "tcp-coalescing", "--set", "link=veth,loopback", "--out", out_text];
    let Some(mut command) = socklab_without_net_admin(&args) else { return };
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "a skip is not a failure: {stdout}");
    assert!(stdout.contains("2 cases: 1 passed, 0 failed, 0 errors, 0 timed out, 1 skipped"), "{stdout}");
    assert!(
        stdout.contains(
            "SKIP tcp-coalescing[link=veth]: skipped: link=veth makes network namespaces, which needs \
             CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root or setcap cap_sys_admin,cap_net_admin,cap_net_raw+ep \
             on the socklab binary)"
        ),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let veth = &report["cases"][0];
    assert_eq!(veth["status"], "skipped");
    assert!(
        veth["metrics"].as_array().unwrap().is_empty(),
        "nothing was measured, over loopback or anywhere"
    );
    assert!(veth["observations"].get("stream").is_none());
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<skipped"), "{junit}");

    // CI demands privileged cases run: there the skip is an error, exit 1.
    let Some(mut command) = socklab_without_net_admin(&args) else { return };
    let output = command.env(REQUIRE_PRIVILEGED_VAR, "1").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cases"][0]["status"], "error");
    assert!(report["cases"][0]["error"].as_str().unwrap().contains("may not be skipped"));
}

/// What the README promises for running without root: the binary with `setcap
/// cap_sys_admin,cap_net_admin,cap_net_raw+ep`, run by an ordinary user (`nobody`), makes
/// a veth link (namespaces, and `ip` and `tc` inside them, which get the capabilities
/// through the ambient set) and captures on it. Needs root to set it up (a copy of the
/// binary, `setcap`, `setpriv`); CI runs it.
#[test]
fn with_file_capabilities_an_unprivileged_user_runs_a_veth_case_and_captures() {
    let name = "with_file_capabilities_an_unprivileged_user_runs_a_veth_case_and_captures";
    let tools = ["setcap", "setpriv"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    // /proc/self belongs to the effective user.
    let root = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
    if !root || !tools {
        let reason = "needs root, setcap (libcap2-bin) and setpriv (util-linux) to set the test up";
        assert!(
            std::env::var(REQUIRE_PRIVILEGED_VAR).as_deref() != Ok("1"),
            "{name}: {REQUIRE_PRIVILEGED_VAR}=1 but it {reason}"
        );
        eprintln!("skipping {name}: {reason}");
        return;
    }
    // A copy of the binary that the unprivileged user may run, with file capabilities.
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("socklab");
    std::fs::copy(Command::cargo_bin("socklab").unwrap().get_program(), &binary).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for path in [dir.path(), &out] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let setcap = Command::new("setcap")
        .args(["cap_sys_admin,cap_net_admin,cap_net_raw+ep"])
        .arg(&binary)
        .output()
        .unwrap();
    assert!(setcap.status.success(), "setcap: {}", String::from_utf8_lossy(&setcap.stderr));
    let report = out.join("r");
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(&binary)
        .args(["run", "tcp-coalescing", "--set", "link=veth", "--set", "large_message=4000", "--out"])
        .arg(&report)
        .env("NO_COLOR", "1")
        .env_remove(REQUIRE_PRIVILEGED_VAR)
        .current_dir(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("1 case: 1 passed, 0 failed, 0 errors, 0 timed out"), "{stdout}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let case = &report["cases"][0];
    assert_eq!(case["observations"]["capture"]["status"], "captured", "{case:#}");
    assert_eq!(case["observations"]["link"]["kind"], "veth", "{case:#}");
}
