//! The `tun` binary run as a real process, each privileged test inside a
//! private network namespace the test makes (the child enters it with
//! `nsenter --net=/proc/PID/fd/FD`). Without root these tests are skipped,
//! unless `TUN_REQUIRE_PRIVILEGED=1`, which makes them fail instead.
//!
//! Traffic goes only to addresses inside those namespaces.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tun_device::NetNs;
use tun_device::netlink::Netlink;
// A fresh namespace without IPv6 chatter (router solicitations, MLD) on
// new devices, or `None` (skip) without privileges, unless required.
use tun_testbed::{link_names, quiet_ns};

const BIN: &str = env!("CARGO_BIN_EXE_tun");

fn ns_path(ns: &NetNs) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd())
}

/// `tun ARGS` inside `ns`.
fn tun_in(ns: &NetNs, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", ns_path(ns))).arg(BIN).args(args);
    c
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("run tun")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tun failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The one-line error of a failed run with exit code `code`.
#[track_caller]
fn fails(out: &Output, code: i32) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    err
}

/// Whether `name` exists in `ns`.
fn exists(ns: &NetNs, name: &str) -> bool {
    let name = name.to_string();
    ns.run(move || Ok(Netlink::open()?.link_by_name(&name).is_ok()))
        .expect("netlink")
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for `child` to exit within `secs`; kill it and fail otherwise.
fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tun did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start `cmd` with stdout and stderr piped; returns the child, its
/// stderr and the first line on it (what it says it is doing).
fn started(mut cmd: Command) -> (Child, BufReader<std::process::ChildStderr>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    (child, err, first)
}

fn sigint(child: &Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("SIGINT");
}

/// Send UDP datagrams from inside `ns`: `plain` payload sizes one by one,
/// then `gso` as (segment size, total) sends with UDP_SEGMENT.
fn send_udp(ns: &NetNs, dst: &str, plain: &[usize], gso: &[(usize, usize)]) {
    let (dst, plain, gso) = (dst.to_string(), plain.to_vec(), gso.to_vec());
    ns.run(move || {
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        for n in plain {
            s.send_to(&vec![0x55; n], &dst).expect("send");
        }
        for (seg, total) in gso {
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::UdpGsoSegment,
                &(seg as i32),
            )
            .expect("UDP_SEGMENT");
            s.send_to(&vec![0x66; total], &dst).expect("send gso");
        }
        Ok(())
    })
    .expect("send udp");
}

/// IP lengths of the UDP packets in a pcap file, as tcpdump reads them.
fn tcpdump_ip_lengths(path: &std::path::Path) -> Vec<usize> {
    let out = Command::new("tcpdump")
        .args(["-n", "-v", "-r"])
        .arg(path)
        .output()
        .expect("tcpdump is installed (Debian package tcpdump)");
    assert!(out.status.success(), "tcpdump: {}", text(&out.stderr));
    let s = text(&out.stdout);
    s.lines()
        .filter_map(|l| {
            l.split("proto UDP (17), length ")
                .nth(1)?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tun-cli-{}-{name}", std::process::id()))
}

// ------------------------------------------------------------- usage ---

#[test]
fn help_on_every_command() {
    for cmd in [
        &["--help"][..],
        &["create", "--help"],
        &["delete", "--help"],
        &["show", "--help"],
        &["dump", "--help"],
        &["relay", "--help"],
        &["tunnel", "--help"],
        &["bench", "--help"],
    ] {
        let out = run({
            let mut c = Command::new(BIN);
            c.args(cmd);
            c
        });
        let s = ok(&out);
        assert!(s.contains("Usage: tun"), "{cmd:?}: {s}");
    }
    let bench = text(
        &Command::new(BIN)
            .args(["bench", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        bench.contains("schedstat"),
        "bench --help says how CPU is measured"
    );
    assert!(bench.contains("--mode tunnel"), "{bench}");
    let tunnel = text(
        &Command::new(BIN)
            .args(["tunnel", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        tunnel.contains("unencrypted and unauthenticated"),
        "tunnel --help says what it does not protect: {tunnel}"
    );
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["create"],
        &["create", "t0", "--addr", "10.0.0.1"],
        &["create", "t0", "--mtu", "big"],
        &["bench", "--mode", "turbo"],
        &["bench", "--seconds", "0"],
        &["relay", "a"],
        &["relay", "a", "b", "--offload", "--passthrough"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let err = fails(&out, 2);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        assert!(
            err.contains("Usage") || err.contains("error"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn unknown_user_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["create", "t0", "--owner", "no-such-user-here"])
        .output()
        .unwrap();
    let err = fails(&out, 2);
    assert!(err.contains("unknown user"), "{err}");
}

// -------------------------------------------------------- privileges ---

/// `tun` copied where `nobody` can run it.
fn bin_for_nobody() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp("nobody");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("tun");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn unprivileged_runs_get_a_clear_refusal() {
    let Some(ns) = quiet_ns() else { return };
    let bin = bin_for_nobody();
    let as_nobody = |args: &[&str]| {
        Command::new("nsenter")
            .arg(format!("--net={}", ns_path(&ns)))
            .args([
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .arg(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    let err = fails(&as_nobody(&["create", "t0"]), 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("tun: create t0: "), "{err}");
    assert!(err.contains("CAP_NET_ADMIN"), "{err}");

    let err = fails(&as_nobody(&["bench", "--seconds", "1"]), 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("run as root"), "{err}");
    assert!(!exists(&ns, "t0"));
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
}

// ------------------------------------------- create / show / delete ---

#[test]
fn create_show_delete() {
    let Some(ns) = quiet_ns() else { return };
    let out = run(tun_in(
        &ns,
        &[
            "create",
            "t0",
            "--offload",
            "--multi-queue",
            "--mtu",
            "1400",
            "--addr",
            "10.7.0.1/24",
            "--txqueuelen",
            "200",
            "--owner",
            "65534",
            "--group",
            "65534",
            "--up",
        ],
    ));
    let s = ok(&out);
    assert!(s.starts_with("created tun t0\n"), "{s}");

    let s = ok(&run(tun_in(&ns, &["show", "t0"])));
    assert!(s.contains(": t0: <"), "{s}");
    assert!(s.contains("mtu 1400 qlen 200"), "{s}");
    assert!(
        s.contains(
            "tun type tun pi off vnet_hdr on multi_queue on numqueues 0 numdisabled 0 persist on"
        ),
        "{s}"
    );
    assert!(s.contains("inet 10.7.0.1/24"), "{s}");
    assert!(s.contains("offloads csum tso4 tso6"), "{s}");

    // --json, checked field by field against iproute2's own reading.
    let j: serde_json::Value =
        serde_json::from_str(&ok(&run(tun_in(&ns, &["show", "--json"])))).unwrap();
    let d = &j[0];
    let ip_json = |args: &[&str]| -> serde_json::Value {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", ns_path(&ns)))
            .arg("ip")
            .args(args)
            .output()
            .expect("ip is installed (Debian package iproute2)");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let link = ip_json(&["-d", "-j", "link", "show", "t0"]);
    let addr = ip_json(&["-j", "addr", "show", "t0"]);
    for key in [
        "ifindex",
        "ifname",
        "flags",
        "mtu",
        "operstate",
        "txqlen",
        "link_type",
    ] {
        assert_eq!(d[key], link[0][key], "{key}: ours {d}, ip's {}", link[0]);
    }
    assert_eq!(d["linkinfo"]["info_kind"], link[0]["linkinfo"]["info_kind"]);
    assert_eq!(
        d["linkinfo"]["info_data"], link[0]["linkinfo"]["info_data"],
        "the tun block as `ip -d -j` prints it"
    );
    let theirs = addr[0]["addr_info"].as_array().unwrap();
    let ours = d["addr_info"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "{ours:?} vs {theirs:?}");
    for (o, t) in ours.iter().zip(theirs) {
        for key in ["family", "local", "prefixlen", "address"] {
            assert_eq!(o[key], t[key], "addr_info {key}: {o} vs {t}");
        }
    }
    assert_eq!(d["linkinfo"]["info_data"]["user"], "nobody");
    // -p indents, as `ip -j -p` does.
    let pretty = ok(&run(tun_in(&ns, &["list", "-j", "-p", "t0"])));
    assert!(pretty.contains("\n  "), "{pretty}");
    let again: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(again[0]["ifname"], "t0");

    // A second create of the same name is refused, the first left alone.
    let err = fails(&run(tun_in(&ns, &["create", "t0"])), 1);
    assert!(err.contains("exists"), "{err}");

    // Not ours: the loopback device, and a name that does not exist.
    let err = fails(&run(tun_in(&ns, &["delete", "lo"])), 1);
    assert!(
        err.contains("delete lo: it is the loopback device, not TUN/TAP"),
        "{err}"
    );
    let err = fails(&run(tun_in(&ns, &["delete", "nope0"])), 1);
    assert!(err.contains("delete nope0: no such interface"), "{err}");

    let s = ok(&run(tun_in(&ns, &["delete", "t0"])));
    assert_eq!(s.trim(), "deleted t0");
    assert!(!exists(&ns, "t0"));
    let err = fails(&run(tun_in(&ns, &["show", "t0"])), 1);
    assert!(err.contains("no such interface"), "{err}");
    assert_eq!(ok(&run(tun_in(&ns, &["show"]))), "");
}

#[test]
fn create_tap_in_a_named_path_namespace() {
    let Some(ns) = quiet_ns() else { return };
    // Created from outside the namespace with --netns PATH.
    let s = ok(&run({
        let mut c = Command::new(BIN);
        c.args([
            "create",
            "tap%d",
            "--tap",
            "--netns",
            &ns_path(&ns),
            "--json",
        ]);
        c
    }));
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(j["linkinfo"]["info_data"]["type"], "tap");
    assert_eq!(j["link_type"], "ether");
    let name = j["ifname"].as_str().unwrap().to_string();
    assert!(j["address"].is_string());
    assert!(exists(&ns, &name));
    ok(&run({
        let mut c = Command::new(BIN);
        c.args(["delete", &name, "--netns", &ns_path(&ns)]);
        c
    }));
    assert!(!exists(&ns, &name));
}

// -------------------------------------------------------------- dump ---

#[test]
fn dump_prints_packets_and_show_d_names_the_process() {
    let Some(ns) = quiet_ns() else { return };
    let mut child = tun_in(
        &ns,
        &[
            "dump",
            "d0",
            "--offload",
            "--addr",
            "10.8.0.1/24",
            "-c",
            "2",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for("d0", || exists(&ns, "d0"));

    // Not persistent: delete refuses and names the holder; show -d lists it.
    let err = fails(&run(tun_in(&ns, &["delete", "d0"])), 1);
    assert!(err.contains("not a persistent device"), "{err}");
    let s = ok(&run(tun_in(&ns, &["show", "-d", "d0"])));
    assert!(s.contains("persist off"), "{s}");
    assert!(s.contains("process "), "{s}");

    send_udp(&ns, "10.8.0.2:9", &[100], &[(1000, 3000)]);
    let st = wait_exit(&mut child, 10);
    let out = child.wait_with_output().unwrap();
    assert!(st.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 2, "{s}");
    assert!(lines[0].contains("len 128: IP 10.8.0.1."), "{s}");
    assert!(lines[0].ends_with("> 10.8.0.2.9: UDP, length 100"), "{s}");
    assert!(lines[1].contains("gso UDP_L4 size 1000 segs 3"), "{s}");
    assert!(lines[1].contains("len 3028: IP"), "{s}");
    assert!(!exists(&ns, "d0"), "the device goes with the dump");
}

#[test]
fn dump_writes_pcap_files_tcpdump_reads() {
    let Some(ns) = quiet_ns() else { return };
    let (whole, split) = (tmp("whole.pcap"), tmp("split.pcap"));
    let start = |name: &str, addr: &str, count: &str, file: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "dump",
            name,
            "--offload",
            "--addr",
            addr,
            "--count",
            count,
            "--pcap",
        ];
        let f = file.to_str().unwrap().to_string();
        args.push(&f);
        args.extend_from_slice(extra);
        let c = tun_in(&ns, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(name, || exists(&ns, name));
        c
    };
    let mut a = start("p0", "10.9.1.1/24", "3", &whole, &[]);
    let mut b = start("p1", "10.9.2.1/24", "1", &split, &["--split"]);
    send_udp(&ns, "10.9.1.2:9", &[100, 200], &[(1000, 3000)]);
    send_udp(&ns, "10.9.2.2:9", &[], &[(1000, 2500)]);
    assert!(wait_exit(&mut a, 10).success());
    assert!(wait_exit(&mut b, 10).success());

    // Super-packets as read, then the segments with --split.
    assert_eq!(tcpdump_ip_lengths(&whole), vec![128, 228, 3028]);
    assert_eq!(tcpdump_ip_lengths(&split), vec![1028, 1028, 528]);
    let _ = std::fs::remove_file(whole);
    let _ = std::fs::remove_file(split);
}

// ------------------------------------------------------------- relay ---

#[test]
fn relay_forwards_and_summarises_on_ctrl_c() {
    let (Some(na), Some(nb)) = (quiet_ns(), quiet_ns()) else {
        return;
    };
    for (ns, name, addr) in [(&na, "ra", "10.98.0.1/24"), (&nb, "rb", "10.98.0.2/24")] {
        ok(&run(tun_in(
            ns,
            &["create", name, "--offload", "--addr", addr, "--up"],
        )));
    }
    let (pa, pb) = (ns_path(&na), ns_path(&nb));
    let mut cmd = Command::new(BIN);
    cmd.args([
        "relay",
        "ra",
        "rb",
        "--offload",
        "--netns-a",
        &pa,
        "--netns-b",
        &pb,
    ]);
    let (mut relay, mut err, first) = started(cmd);
    assert!(first.starts_with("relay: ra (tun, offload"), "{first}");

    // 5 datagrams of 1000 bytes from A arrive in B through the relay.
    let rx = nb
        .run(|| Ok(UdpSocket::bind("10.98.0.2:7000").expect("bind")))
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send_udp(&na, "10.98.0.2:7000", &[1000; 5], &[]);
    let mut buf = [0u8; 2000];
    for _ in 0..5 {
        assert_eq!(rx.recv(&mut buf).expect("datagram through the relay"), 1000);
    }

    sigint(&relay);
    let st = wait_exit(&mut relay, 10);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(st.success(), "{rest}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut relay.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.starts_with("relay ra <-> rb (offload mode, 1 queue pair) ran "),
        "{out}"
    );
    let ab = out.lines().find(|l| l.contains("ra -> rb")).unwrap();
    assert!(ab.contains(": 5 packets, 5.1 kB"), "{out}");
    for (ns, name) in [(&na, "ra"), (&nb, "rb")] {
        ok(&run(tun_in(ns, &["delete", name])));
    }
}

// ------------------------------------------------------------- bench ---

/// Whether any process or mount still refers to network namespace `id`
/// (`net:[INODE]`).
fn netns_in_use(id: &str) -> bool {
    let inode = id.trim_start_matches("net:[").trim_end_matches(']');
    if std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| m.contains(id)) {
        return true;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    for p in procs.flatten() {
        let path = p.path();
        let mut links = vec![path.join("ns/net")];
        if let Ok(tasks) = std::fs::read_dir(path.join("task")) {
            links.extend(tasks.flatten().map(|t| t.path().join("ns/net")));
        }
        if let Ok(fds) = std::fs::read_dir(path.join("fd")) {
            links.extend(fds.flatten().map(|f| f.path()));
        }
        if links.iter().any(|l| {
            std::fs::read_link(l).is_ok_and(|t| t.to_string_lossy() == format!("net:[{inode}]"))
        }) {
            return true;
        }
    }
    false
}

/// The network namespaces process `pid` holds by fd, other than `except`.
fn held_namespaces(pid: u32, except: &NetNs) -> Vec<String> {
    let skip = std::fs::read_link(ns_path(except))
        .unwrap()
        .display()
        .to_string();
    let mut ids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|f| std::fs::read_link(f.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.starts_with("net:[") && *l != skip)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn namespaces_in(stderr_line: &str) -> Vec<String> {
    stderr_line
        .split_whitespace()
        .filter(|w| w.starts_with("net:["))
        .map(str::to_string)
        .collect()
}

#[test]
fn bench_smoke_checks_every_byte_and_cleans_up() {
    let Some(ns) = quiet_ns() else { return };
    let out = run(tun_in(
        &ns,
        &["bench", "--seconds", "1", "--rounds", "2", "--json"],
    ));
    let s = ok(&out);
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 8, "veth and three modes, TCP and UDP: {s}");
    for r in results {
        assert_eq!(r["intact"], true, "{r}");
        let rounds: Vec<f64> = r["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(rounds.len(), 2, "{r}");
        let (lo, hi) = (
            r["gbits_min"].as_f64().unwrap(),
            r["gbits_max"].as_f64().unwrap(),
        );
        let median = r["gbits"].as_f64().unwrap();
        assert!(lo <= median && median <= hi, "{r}");
        assert!(r["errors"].as_array().unwrap().is_empty(), "{r}");
        assert!(r["gbits"].as_f64().unwrap() > 0.0, "{r}");
        if r["path"] != "kernel veth" {
            assert!(r["cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{r}");
        }
        if r["path"] == "relay offload" {
            assert!(r["super_packets_in"].as_u64().unwrap() > 0, "{r}");
            assert!(r["coalescing_ratio"].as_f64().unwrap() > 1.0, "{r}");
        }
    }
    let ids: Vec<String> = j["netns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert!(!netns_in_use(id), "{id} outlived the bench");
    }
    assert_eq!(
        link_names(&ns).unwrap(),
        vec!["lo".to_string()],
        "a device was left behind"
    );
}

#[test]
fn bench_ctrl_c_cleans_up() {
    let Some(ns) = quiet_ns() else { return };
    let (mut child, mut err, first) = started(tun_in(
        &ns,
        &[
            "bench",
            "--seconds",
            "2",
            "--rounds",
            "1",
            "--mode",
            "offload",
        ],
    ));
    assert!(
        namespaces_in(&first).is_empty(),
        "no inode numbers: {first}"
    );
    let ids = held_namespaces(child.id(), &ns);
    assert_eq!(ids.len(), 2, "{first}");
    // Interrupt during the relay run (the veth runs take the first 4 s).
    let mut line = String::new();
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "bench ended early");
        if line.contains("[2/4]") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    sigint(&child);
    let st = wait_exit(&mut child, 10);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert_eq!(st.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    for id in &ids {
        assert!(!netns_in_use(id), "{id} outlived the bench");
    }
    assert_eq!(link_names(&ns).unwrap(), vec!["lo".to_string()]);
}

// ------------------------------------------------ usage, as iproute2 ---

#[test]
fn bad_interface_names_are_usage_errors_that_say_why() {
    for (name, what) in [
        ("abcdefghijklmnop", "16 bytes long"),
        ("", "empty"),
        ("a/b", "'/'"),
        ("a b", "whitespace"),
        ("a:b", "':'"),
        (".", "\".\""),
        ("..", "\"..\""),
        ("a%d%d", "second '%'"),
        ("a%s", "not '%d'"),
    ] {
        for cmd in [
            &["create", name][..],
            &["dump", name],
            &["relay", name, "x0"],
        ] {
            let err = fails(&Command::new(BIN).args(cmd).output().unwrap(), 2);
            assert!(err.contains(what), "{cmd:?}: {err}");
        }
    }
    // A newline in the name does not split the error line.
    let err = fails(
        &Command::new(BIN).args(["create", "a\nb"]).output().unwrap(),
        2,
    );
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("a\\nb") && first.contains("whitespace"),
        "{err}"
    );
}

#[test]
fn relay_refuses_a_device_into_itself() {
    let err = fails(
        &Command::new(BIN)
            .args(["relay", "r0", "r0"])
            .output()
            .unwrap(),
        2,
    );
    assert!(
        err.contains("the same device in the same network namespace"),
        "{err}"
    );
}

#[test]
fn ipv6_on_a_small_mtu_is_explained() {
    let out = Command::new(BIN)
        .args(["create", "t6", "--mtu", "1200", "--addr", "fd00::1/64"])
        .output()
        .unwrap();
    let err = fails(&out, 2);
    assert!(err.contains("IPv6 needs an MTU of at least 1280"), "{err}");
}

#[test]
fn version_completions_and_man_page() {
    let v = ok(&Command::new(BIN).arg("--version").output().unwrap());
    assert_eq!(v.trim(), format!("tun {}", env!("CARGO_PKG_VERSION")));
    let bash = ok(&Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap());
    assert!(bash.contains("_tun()") && bash.contains("bench"), "{bash}");
    let man = ok(&Command::new(BIN).arg("man").output().unwrap());
    assert!(man.starts_with(".ie") || man.contains(".TH tun"), "{man}");
    assert!(man.contains("relay"), "{man}");
}

#[test]
fn a_netns_path_that_is_no_network_namespace_is_named() {
    let Some(_ns) = quiet_ns() else { return };
    let err = fails(
        &Command::new(BIN)
            .args(["show", "--netns", "/proc/self/ns/mnt"])
            .output()
            .unwrap(),
        1,
    );
    assert!(
        err.contains("--netns /proc/self/ns/mnt: not a network namespace (it is a mnt namespace)"),
        "{err}"
    );
    let err = fails(
        &Command::new(BIN)
            .args(["show", "--netns", "/etc/hostname"])
            .output()
            .unwrap(),
        1,
    );
    assert!(
        err.contains("--netns /etc/hostname: not a network namespace"),
        "{err}"
    );
}

// ------------------------------------------ existing devices and holders ---

fn offloads_line(ns: &NetNs, name: &str) -> String {
    ok(&run(tun_in(ns, &["show", name])))
        .lines()
        .find(|l| l.trim_start().starts_with("offloads"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn opening_an_existing_device_leaves_its_offloads_as_they_were() {
    let Some(ns) = quiet_ns() else { return };
    // vnet_hdr without offloads, as `ip tuntap add ... vnet_hdr` makes it.
    tun_testbed::output(
        &ns,
        "ip",
        &["tuntap", "add", "dev", "o0", "mode", "tun", "vnet_hdr"],
    )
    .unwrap();
    assert_eq!(offloads_line(&ns, "o0"), "offloads none");
    for cmd in [&["dump", "o0"][..], &["relay", "o0", "o1", "--offload"]] {
        let (mut child, _err, first) = started(tun_in(&ns, cmd));
        assert!(first.contains("o0 (tun, offload none"), "{cmd:?}: {first}");
        assert!(first.contains("its offloads left as they were"), "{first}");
        assert_eq!(
            offloads_line(&ns, "o0"),
            "offloads none",
            "{cmd:?} while it is open"
        );
        sigint(&child);
        assert!(wait_exit(&mut child, 10).success(), "{cmd:?}");
        assert_eq!(offloads_line(&ns, "o0"), "offloads none", "{cmd:?} after");
    }
    ok(&run(tun_in(&ns, &["del", "o0"])));
}

#[test]
fn holders_are_matched_by_namespace() {
    let (Some(na), Some(nb)) = (quiet_ns(), quiet_ns()) else {
        return;
    };
    // h0 held open by a dump in A; another h0, persistent, in B.
    let mut dump = tun_in(&na, &["dump", "h0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("h0 in A", || exists(&na, "h0"));
    ok(&run(tun_in(&nb, &["add", "h0"])));
    let s = ok(&run(tun_in(&na, &["show", "-d", "h0"])));
    assert!(s.contains("process "), "A's holder is listed in A: {s}");
    let s = ok(&run(tun_in(&nb, &["show", "-d", "h0"])));
    assert!(s.contains("processes none"), "A's holder is not B's: {s}");
    let s = ok(&run(tun_in(&nb, &["delete", "h0"])));
    assert_eq!(s.trim(), "deleted h0");
    sigint(&dump);
    assert!(wait_exit(&mut dump, 10).success());
}

#[test]
fn tap_with_offload_is_created_and_dumped() {
    let Some(ns) = quiet_ns() else { return };
    let s = ok(&run(tun_in(
        &ns,
        &["create", "to0", "--tap", "--offload", "-j"],
    )));
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(j["linkinfo"]["info_data"]["type"], "tap");
    assert_eq!(j["linkinfo"]["info_data"]["vnet_hdr"], true);
    ok(&run(tun_in(&ns, &["delete", "to0"])));
    let (mut child, _err, first) = started(tun_in(&ns, &["dump", "td0", "--tap", "--offload"]));
    assert!(first.contains("td0 (tap, offload csum"), "{first}");
    sigint(&child);
    assert!(wait_exit(&mut child, 10).success());
}

#[test]
fn dump_writes_pcap_to_stdout_packet_by_packet() {
    use std::io::Read;
    let Some(ns) = quiet_ns() else { return };
    let mut child = tun_in(
        &ns,
        &["dump", "w0", "--addr", "10.62.0.1/24", "-w", "-", "-U"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for("w0", || exists(&ns, "w0"));
    send_udp(&ns, "10.62.0.2:9", &[100], &[]);
    // While dump still runs: the file header and the one record.
    let mut out = child.stdout.take().unwrap();
    let mut pcap = vec![0u8; 24 + 16 + 128];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = out.read_exact(&mut pcap).map(|()| pcap);
        let _ = tx.send(r);
    });
    let pcap = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the packet reached stdout while dump ran")
        .unwrap();
    assert_eq!(
        u32::from_ne_bytes(pcap[0..4].try_into().unwrap()),
        0xa1b2_c3d4
    );
    assert_eq!(u32::from_ne_bytes(pcap[32..36].try_into().unwrap()), 128);
    assert_eq!(pcap[40] >> 4, 4, "an IPv4 packet");
    assert!(!std::path::Path::new("-").exists());
    sigint(&child);
    assert!(wait_exit(&mut child, 10).success());
}

// ------------------------------------------------------ bench, harder ---

#[test]
fn bench_needs_no_ip_binary_and_takes_a_jumbo_mtu() {
    let Some(ns) = quiet_ns() else { return };
    let empty = tmp("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let nsenter = ["/usr/bin/nsenter", "/bin/nsenter"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nsenter (Debian package util-linux)");
    let out = Command::new(nsenter)
        .arg(format!("--net={}", ns_path(&ns)))
        .arg(BIN)
        .args([
            "bench",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--mode",
            "plain",
        ])
        .args(["--mtu", "9000", "--json"])
        .env("PATH", &empty)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = ok(&out);
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{s}");
    for r in results {
        assert_eq!(r["intact"], true, "{r}");
        assert!(r["gbits"].as_f64().unwrap() > 0.0, "{r}");
    }
    let _ = std::fs::remove_dir(empty);
    assert_eq!(link_names(&ns).unwrap(), vec!["lo".to_string()]);
}

#[test]
fn bench_ctrl_c_to_the_process_group_during_set_up_exits_130() {
    use std::os::unix::process::CommandExt;
    let Some(ns) = quiet_ns() else { return };
    // The veth pair is made right after the first line: Ctrl-C, as a
    // terminal sends it, to the whole group, at several points of the
    // set-up (the window of an `ip` child, when there was one, was 5 to
    // 15 ms wide).
    for delay_ms in [0, 3, 6, 10, 15, 25, 40] {
        let mut cmd = tun_in(&ns, &["bench", "--seconds", "1", "--rounds", "1"]);
        cmd.process_group(0);
        let (mut child, mut err, _first) = started(cmd);
        std::thread::sleep(Duration::from_millis(delay_ms));
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("SIGINT to the group");
        let st = wait_exit(&mut child, 10);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
        assert_eq!(st.code(), Some(130), "after {delay_ms} ms: {rest}");
        assert!(rest.contains("interrupted"), "{rest}");
        assert_eq!(link_names(&ns).unwrap(), vec!["lo".to_string()]);
    }
}

// ------------------------------------------------------------ tunnel ---

#[test]
fn tunnel_carries_tcp_to_a_library_peer_and_summarises_on_ctrl_c() {
    use tun_testbed::{Side, Testbed};
    use tun_tunnel::{Tunnel, TunnelConfig};
    // The privilege check (and skip) of every test here.
    let Some(_) = quiet_ns() else { return };
    let tb = Testbed::new().unwrap();
    let _underlay = tb.underlay(1500).unwrap();
    // Side B: the library's tunnel, its socket bound before A sends.
    let sock_b = tb
        .ns_b
        .run(|| Ok(UdpSocket::bind("10.98.0.2:5300")))
        .unwrap()
        .unwrap();
    // Side A: a device made by `tun create`, carried by `tun tunnel`.
    ok(&run(tun_in(
        &tb.ns_a,
        &[
            "create",
            "tt0",
            "--offload",
            "--addr",
            "10.99.0.1/24",
            "--mtu",
            "1400",
            "--up",
        ],
    )));
    let cmd = tun_in(
        &tb.ns_a,
        &[
            "tunnel",
            "tt0",
            "--offload",
            "--peer",
            "10.98.0.2:5300",
            "--bind",
            "10.98.0.1:5300",
        ],
    );
    let (mut child, mut err, first) = started(cmd);
    assert!(first.starts_with("tunnel: tt0 (tun, offload"), "{first}");
    assert!(
        first.contains("<-> udp 10.98.0.1:5300 -> 10.98.0.2:5300; UDP GSO on, GRO on"),
        "{first}"
    );
    let dev_b = tb
        .device(
            Side::B,
            tun_device::Device::builder()
                .name("tt%d")
                .offload(true)
                .mtu(1400)
                .up(true),
        )
        .unwrap();
    let b = Tunnel::start(
        dev_b.into_queues().remove(0),
        sock_b,
        TunnelConfig::new("10.98.0.1:5300".parse().unwrap()),
    )
    .unwrap();
    let t = tb
        .tcp(false, 1, Duration::from_secs(60), Some(8 << 20))
        .unwrap();
    assert!(t.intact && t.bytes == 8 << 20, "{t:?}");
    sigint(&child);
    let st = wait_exit(&mut child, 10);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(st.success(), "{rest}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.starts_with("tunnel tt0 <-> 10.98.0.2:5300 ran "),
        "{out}"
    );
    let sock = out.lines().find(|l| l.starts_with("  socket: ")).unwrap();
    let sent: u64 = sock["  socket: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cb = b.stop().unwrap();
    assert!(sent > (8 << 20) / 1400, "{out}");
    assert_eq!(cb.datagrams_received, sent, "{out}\n{cb:?}");
    assert!(sock.contains(" 0 malformed, 0 too large"), "{out}");
    ok(&run(tun_in(&tb.ns_a, &["delete", "tt0"])));
}

#[test]
fn tunnel_usage_errors_exit_2() {
    for args in [
        &["tunnel", "t0"][..],
        &["tunnel", "t0", "--peer", "nonsense"],
        &["tunnel", "t0", "--peer", "10.0.0.1:1", "--bind", "[::]:1"],
    ] {
        let out = run({
            let mut c = Command::new(BIN);
            c.args(args);
            c
        });
        let e = fails(&out, 2);
        assert!(!e.is_empty(), "{args:?}");
    }
}

#[test]
fn bench_tunnel_mode_measures_the_tunnels_beside_the_relay() {
    let Some(ns) = quiet_ns() else { return };
    let out = run(tun_in(
        &ns,
        &[
            "bench",
            "--mode",
            "tunnel",
            "--seconds",
            "1",
            "--rounds",
            "1",
            "--json",
        ],
    ));
    let s = ok(&out);
    let j: serde_json::Value = serde_json::from_str(&s).unwrap();
    let results = j["results"].as_array().unwrap();
    let paths: Vec<&str> = results
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "kernel veth",
            "kernel veth",
            "relay offload",
            "relay offload",
            "tunnel gso/gro",
            "tunnel gso/gro",
            "tunnel no gso/gro",
            "tunnel no gso/gro"
        ]
    );
    for r in results {
        assert_eq!(r["intact"], true, "{r}");
        assert!(r["errors"].as_array().unwrap().is_empty(), "{r}");
        let per_send = r["datagrams_per_send"].as_f64();
        match r["path"].as_str().unwrap() {
            "tunnel gso/gro" => {
                assert!(per_send.unwrap() > 1.0, "{r}");
                assert!(r["cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{r}");
            }
            "tunnel no gso/gro" => assert_eq!(per_send, Some(1.0), "{r}"),
            _ => assert_eq!(per_send, None, "{r}"),
        }
    }
    assert_eq!(link_names(&ns).unwrap(), vec!["lo".to_string()]);
}
