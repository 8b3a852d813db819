//! Networks: `isola network create|ls|rm|inspect` through the real binary. Anything that
//! touches the kernel's networking runs inside a network namespace the test makes itself.

use isola_e2e::Env;

#[test]
fn networks_are_created_listed_inspected_and_removed() {
    let env = Env::empty();
    let ls = || env.isola(&["network", "ls", "-q"]).stdout;
    assert_eq!(
        ls(),
        "bridge\n",
        "the default network is there from the start"
    );
    let r = env.isola(&["network", "create", "--subnet", "10.90.0.0/24", "front"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{}", r.stdout);
    // Without --subnet: the first free /24 of 10.88.0.0/16.
    assert_eq!(env.isola(&["network", "create", "back"]).code, 0);
    assert_eq!(ls(), "bridge\nback\nfront\n");
    let r = env.isola(&["network", "inspect", "front", &id[..12]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Subnet"], "10.90.0.0/24");
    assert_eq!(v[0]["Gateway"], "10.90.0.1");
    assert_eq!(v[1]["Name"], "front", "found by its id too");
    let bridge = v[0]["Bridge"].as_str().unwrap();
    assert!(
        bridge.len() <= 15 && bridge.starts_with("isola-"),
        "{bridge}"
    );
    let r = env.isola(&["network", "inspect", "back"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Subnet"], "10.88.0.0/24");
    let r = env.isola(&["network", "rm", "front", "back"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "front\nback\n"),
        "{}",
        r.stderr
    );
    assert_eq!(ls(), "bridge\n");
    let left: Vec<_> = std::fs::read_dir(env.root.join("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn bad_network_input_is_named_and_changes_nothing() {
    let env = Env::empty();
    assert_eq!(
        env.isola(&["network", "create", "--subnet", "10.90.0.0/24", "taken"])
            .code,
        0
    );
    for (args, words) in [
        (
            vec!["create", "--subnet", "10.90.0.1/24", "x"],
            "\"10.90.0.1/24\": host bits",
        ),
        (
            vec!["create", "--subnet", "10.90.0.0/40", "x"],
            "\"10.90.0.0/40\"",
        ),
        (vec!["create", "--subnet", "ten/8", "x"], "\"ten/8\""),
        (
            vec!["create", "--subnet", "10.90.0.128/25", "x"],
            "overlaps network \"taken\"",
        ),
        (
            vec!["create", "--subnet", "10.0.0.0/8", "x"],
            "overlaps network \"bridge\"",
        ),
        (vec!["create", "taken"], "network \"taken\" already exists"),
        (vec!["create", "_bad"], "network name \"_bad\""),
        (vec!["create", "no/slash"], "network name \"no/slash\""),
        (vec!["rm", "nope"], "no such network: \"nope\""),
        (vec!["rm", "bridge"], "\"bridge\" is a pre-defined network"),
        (vec!["inspect", "nope"], "no such network: \"nope\""),
    ] {
        let mut all = vec!["network"];
        all.extend(&args);
        let r = env.isola(&all);
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains(words), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    assert_eq!(
        env.isola(&["network", "ls", "-q"]).stdout,
        "bridge\ntaken\n"
    );
}

#[test]
fn a_subnet_on_a_route_of_the_host_is_refused() {
    // The "host" is a network namespace of this test's own, with a route to 10.200.0.0/24.
    let env = Env::empty();
    let (code, _, stderr) = in_own_netns(
        &env,
        "ip link set lo up && ip route add 10.200.0.0/24 dev lo && \
         $ISOLA network create --subnet 10.200.0.0/16 onroute",
    );
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("overlaps this host's route to 10.200.0.0/24 (on lo)"),
        "{stderr}"
    );
    assert_eq!(env.isola(&["network", "ls", "-q"]).stdout, "bridge\n");
}

#[test]
fn concurrent_creates_get_distinct_subnets() {
    let env = Env::empty();
    let children: Vec<_> = (0..12)
        .map(|i| {
            env.cmd(&["network", "create", &format!("n{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let r = env.isola(&[
        "network", "inspect", "n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10",
        "n11",
    ]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut subnets: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["Subnet"].as_str().unwrap())
        .collect();
    subnets.sort();
    subnets.dedup();
    assert_eq!(subnets.len(), 12, "{subnets:?}");
}

/// The names of the network interfaces in /proc/net/dev (of whoever reads it).
fn interfaces(dev: &str) -> Vec<String> {
    let mut names: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn network_none_is_loopback_only_and_host_is_the_hosts_own() {
    let env = Env::new();
    // A server on the host's loopback (the only place this test sends anything).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut s, &mut got).unwrap();
        got
    });
    let send = format!("echo hello-from-inside | nc 127.0.0.1 {port}");

    let r = env.isola(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sample",
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(interfaces(&r.stdout), ["lo"]);
    let r = env.isola(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sample",
        "sh",
        "-c",
        &send,
    ]);
    assert_ne!(r.code, 0, "none cannot reach the host");
    // This thread's namespace (the test's own), not the process's /proc/net.
    let host_dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    let r = env.isola(&[
        "run",
        "--rm",
        "--network",
        "host",
        "sample",
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(interfaces(&r.stdout), interfaces(&host_dev));
    let r = env.isola(&["run", "--rm", "--net", "host", "sample", "sh", "-c", &send]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.join().unwrap(), "hello-from-inside\n");
    let on_host = |script: &str| {
        env.isola(&[
            "run",
            "--rm",
            "--network",
            "host",
            "sample",
            "sh",
            "-c",
            script,
        ])
    };
    let r = on_host("hostname; cat /etc/resolv.conf");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(r.stdout, format!("{}{resolv}", host_name), "{}", r.stderr);
    // Read-only: the host's file is not the container's to change.
    let r = on_host("echo x >> /etc/resolv.conf");
    assert_ne!(r.code, 0);
    assert_eq!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        resolv
    );
    // The default is docker's: the bridge network, an address of 10.87.0.0/16 on eth0 (last:
    // its veth goes with its namespace, in the background, and would show in the host's list).
    let r = env.isola(&[
        "run",
        "--rm",
        "sample",
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | cut -d' ' -f7; ip route | head -1",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout, "10.87.0.2/16\ndefault via 10.87.0.1 dev eth0 \n",
        "the default network"
    );

    env.assert_clean();
}

#[test]
fn a_network_isola_cannot_give_is_refused_in_one_line() {
    let env = Env::new();
    for (args, words) in [
        (
            vec![
                "run",
                "--rm",
                "--isolation",
                "vm",
                "--network",
                "host",
                "sample",
                "true",
            ],
            "--network host: a VM has its own kernel",
        ),
        (
            vec!["run", "--rm", "--network", "bogus", "sample", "true"],
            "no such network: \"bogus\"",
        ),
    ] {
        let r = env.isola(&args);
        assert_eq!(r.code, 125, "{args:?}");
        assert!(r.stderr.contains(words), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    env.assert_clean();
}

/// What every script starts with: no workload outlives it, and its helpers — `wait_leases NET
/// N` waits (30 s at most) until network NET has N workloads on it; `try HOST PORT`: what a
/// one-shot server at HOST:PORT says, asked until it answers (10 s); `port_rules`,
/// `port_claims` count isola's port rules and claims, `wait_rules N` waits for N rules (a
/// workload's come after its address); `wait_no_veths` waits (5 s) for the kernel to tear
/// down ended workloads' veths.
const PRELUDE: &str = r#"
ip link set lo up
# On a timeout: isola forwards TERM to the workload, which as its PID 1 may ignore it; so
# KILL, and the cleanup pass ends what the killed isolas ran.
trap 'kill -9 $(jobs -p) 2>/dev/null; $ISOLA cleanup >/dev/null; exit 1' TERM INT
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
wait_leases() {
  i=0; until [ "$(ls "$ISOLA_ROOT/run/net/leases/$1" 2>/dev/null | wc -l)" -ge "$2" ]; do
    i=$((i+1)); [ $i -lt 300 ] || { echo "never $2 on $1" >&2; exit 9; }; sleep 0.1; done
}
try() { i=0; until out=$(busybox nc -w 2 "$1" "$2" </dev/null) && [ -n "$out" ]; do
  i=$((i+1)); [ $i -lt 100 ] || return 1; sleep 0.1; done; echo "$out"; }
port_rules() { nft list chain inet isola publish 2>/dev/null | grep -c "workload" || true; }
port_claims() { ls "$ISOLA_ROOT/run/net/ports-tcp" "$ISOLA_ROOT/run/net/ports-udp" 2>/dev/null | grep -c '^[0-9]' || true; }
wait_rules() { i=0; until [ "$(port_rules)" -ge "$1" ] || [ $i -ge 100 ]; do i=$((i+1)); sleep 0.1; done; }
wait_no_veths() { i=0; while [ "$(ip -o link | grep -c veth)" -gt 0 ] && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done; }
"#;

/// Runs `script` with sh inside a network namespace of its own (the "host" of this test),
/// `$ISOLA` being the isola under test; returns its output and status.
fn in_own_netns(env: &Env, script: &str) -> (i32, String, String) {
    let script = format!("{PRELUDE}{script}");
    // Bounded: a workload that never gets its connection must not hang the suite.
    let o = std::process::Command::new("timeout")
        .args(["-k", "5", "120", "unshare", "-n", "sh", "-c", &script])
        .env("ISOLA_ROOT", &env.root)
        .env("ISOLA", isola_e2e::bin())
        .env("NETECHO", isola_e2e::workload("netecho"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn containers_on_a_bridge_network_reach_each_other_by_name_and_the_host_reaches_them() {
    let env = Env::new();
    let script = r#"
set -e
$ISOLA network create --subnet 10.90.0.0/24 n1 >/dev/null
$ISOLA network create --subnet 10.91.0.0/24 n2 >/dev/null
# One after the other, so srv is 10.90.0.2 and web 10.90.0.3.
$ISOLA run --rm --name srv --network n1 sample sh -c 'echo from-srv | nc -l -p 8080' &
wait_leases n1 1
$ISOLA run --rm --name web --network n1 sample sh -c 'echo from-web | nc -l -p 9090' &
wait_leases n1 2
sleep 0.5
echo "peer: $($ISOLA run --rm --name cli --network n1 sample nc -w 10 srv 8080)"
# The host reaches a workload at its address on the bridge.
echo "host: $(busybox nc -w 10 10.90.0.3 9090 </dev/null)"
# Another network is another bridge: no way across.
echo "other: $($ISOLA run --rm --network n2 sample sh -c 'nc -w 2 10.90.0.2 8080 || echo unreachable')"
echo "default: $($ISOLA run --rm --network bridge sample sh -c 'ip -4 -o addr show eth0 | cut -d" " -f7; ip route | head -1')"
wait
# The veths go with the workloads' namespaces, which the kernel tears down in the background.
wait_no_veths
echo "links: $(ip -o link | grep -c veth || true)"
$ISOLA network inspect n1 | tr -d ' \n' | grep -o '"Workloads":\[[^]]*\]'
$ISOLA network rm n1 n2
echo "bridges: $(ip -o link | grep -c isola- || true)"
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("peer: from-srv\n"), "{out}{err}");
    assert!(out.contains("host: from-web\n"), "{out}{err}");
    assert!(out.contains("other: unreachable\n"), "{out}{err}");
    assert!(
        out.contains("default: 10.87.0.2/16\ndefault via 10.87.0.1 dev eth0"),
        "{out}{err}"
    );
    assert!(out.contains("links: 0\n"), "no veth left: {out}{err}");
    assert!(
        out.contains("\"Workloads\":[]"),
        "no lease left: {out}{err}"
    );
    assert!(
        out.contains("bridges: 0\n"),
        "rm takes the bridges: {out}{err}"
    );
    env.assert_clean();
}

#[test]
fn fifty_concurrent_runs_get_fifty_addresses() {
    let env = Env::new();
    let script = r#"
$ISOLA network create --subnet 10.92.0.0/24 many >/dev/null || exit 9
for i in $(seq 50); do
  # Each holds its address until all fifty have one (a freed address is rightly taken again).
  $ISOLA run --rm --network many sample sh -c 'ip -4 -o addr show eth0 | cut -d" " -f7; sleep 20' > "$ISOLA_ROOT/addr.$i" 2>&1 &
done
wait_leases many 50
wait
cat "$ISOLA_ROOT"/addr.*
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    let mut addrs: Vec<&str> = out.lines().collect();
    assert_eq!(addrs.len(), 50, "{out}{err}");
    assert!(addrs.iter().all(|a| a.starts_with("10.92.0.")), "{out}");
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 50, "each its own: {out}");
    env.assert_clean();
}

#[test]
fn a_killed_isola_leaves_no_address_link_port_rule_or_peer_name_once_cleanup_has_run() {
    let env = Env::new();
    let script = r#"
$ISOLA network create --subnet 10.93.0.0/24 k >/dev/null || exit 9
# A peer there first sees the killed one named, then its name gone with the cleanup.
$ISOLA run --rm --name watcher --network k sample sh -c '
  i=0; until grep -qw victim /etc/hosts; do i=$((i+1)); [ $i -lt 300 ] || exit 3; sleep 0.1; done
  echo "named: $(grep -w victim /etc/hosts | cut -f1)"
  i=0; while grep -qw victim /etc/hosts; do i=$((i+1)); [ $i -lt 300 ] || exit 4; sleep 0.1; done
  echo "name gone"' > "$ISOLA_ROOT/watcher.out" &
watcher=$!
wait_leases k 1
$ISOLA run --rm --name victim --network k -p 8080:80 -p 5300:53/udp sample sleep 300 &
pid=$!
wait_leases k 2
wait_rules 2
echo "rules before: $(port_rules) claims before: $(port_claims)"
kill -9 $pid; wait $pid 2>/dev/null
sleep 0.5
$ISOLA cleanup >/dev/null
wait $watcher; echo "watcher exit: $?"
cat "$ISOLA_ROOT/watcher.out"
wait_no_veths
echo "leases: $(ls "$ISOLA_ROOT/run/net/leases/k" | wc -l)"
echo "links: $(ip -o link | grep -c veth || true)"
echo "rules: $(port_rules) claims: $(port_claims)"
$ISOLA network rm k
# The last network's rules gone, isola's table goes too.
nft list table inet isola >/dev/null 2>&1 && echo "table left" || echo "no table"
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("rules before: 2 claims before: 2\n"),
        "{out}{err}"
    );
    assert!(
        out.contains("watcher exit: 0\nnamed: 10.93.0.3\nname gone\n"),
        "{out}{err}"
    );
    assert!(
        out.contains("leases: 0\nlinks: 0\nrules: 0 claims: 0\nk\nno table\n"),
        "{out}{err}"
    );
    env.assert_clean();
}

#[test]
fn published_ports_reach_the_workload_from_loopback_and_the_bridge_over_tcp_and_udp() {
    let env = Env::new();
    let script = r#"
$ISOLA run --rm --name web --network bridge -p 8080:80 -p 10.87.0.1:8081:81 -p 127.0.0.1:5300:53/udp -p 127.0.0.1::82 sample sh -c '
  echo from-tcp-80 | nc -l -p 80 &
  echo from-tcp-81 | nc -l -p 81 &
  echo from-tcp-82 | nc -l -p 82 &
  echo "udp: $(netecho once udp 53)"' > "$ISOLA_ROOT/web.out" &
web=$!
wait_leases bridge 1
wait_rules 4
echo "rules while up: $(port_rules)"
i=0; until $ISOLA ps | grep -o "0.0.0.0:8080->80/tcp, 10.87.0.1:8081->81/tcp, 127.0.0.1:5300->53/udp"; do
  i=$((i+1)); [ $i -lt 50 ] || break; sleep 0.1; done
echo "loopback: $(try 127.0.0.1 8080)"
echo "bridge address: $(try 10.87.0.1 8081)"
# No host port given: the one picked is in `isola ps`.
picked=$($ISOLA ps | grep -o '127.0.0.1:[0-9]*->82/tcp' | cut -d: -f2 | cut -d- -f1)
echo "picked port: $(try 127.0.0.1 "$picked")"
# The reply comes back through the same translation.
echo "udp reply: $($NETECHO ask udp 127.0.0.1:5300 hello-udp)"
wait $web; echo "web exit: $?"
cat "$ISOLA_ROOT/web.out"
echo "rules after: $(port_rules)"
echo "claims after: $(port_claims)"
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("rules while up: 4\n0.0.0.0:8080->80/tcp, 10.87.0.1:8081->81/tcp, 127.0.0.1:5300->53/udp\n"),
        "ps shows the ports: {out}{err}"
    );
    assert!(out.contains("loopback: from-tcp-80\n"), "{out}{err}");
    assert!(out.contains("bridge address: from-tcp-81\n"), "{out}{err}");
    assert!(out.contains("picked port: from-tcp-82\n"), "{out}{err}");
    assert!(
        out.contains("udp reply: hello-udp\nweb exit: 0\nudp: hello-udp\n"),
        "{out}{err}"
    );
    assert!(
        out.contains("rules after: 0\nclaims after: 0\n"),
        "the workload's rules and ports go with it: {out}{err}"
    );
    env.assert_clean();
}

#[test]
fn a_port_taken_or_malformed_is_refused_by_name_and_leaves_nothing() {
    let env = Env::new();
    let script = r#"
busybox nc -l -p 7000 </dev/null >/dev/null & hold=$!
sleep 0.3
$ISOLA run --rm --network bridge -p 7000:80 sample true; echo "held by the host: $?"
kill $hold
$ISOLA run --rm --network bridge -p 7001:80 sample sh -c 'trap "exit 0" TERM; sleep 60 & wait' & first=$!
wait_leases bridge 1
wait_rules 1
$ISOLA run --rm --network bridge -p 7001:80 sample true; echo "held by a workload: $?"
echo "claims while one runs: $(port_claims)"
kill $first; wait $first
$ISOLA run --rm --network bridge -p 80:x sample true; echo "malformed: $?"
$ISOLA run --rm --network bridge -p 1.2.3.4.5:80:80 sample true; echo "bad address: $?"
$ISOLA run --rm --network bridge -p 10.9.9.9:8080:80 sample true; echo "not the host's: $?"
$ISOLA run --rm --network none -p 8080:80 sample true; echo "no bridge: $?"
$ISOLA run --rm --network host -p 8080:80 sample true; echo "host: $?"
echo "rules after: $(port_rules)"
echo "claims after: $(port_claims)"
echo "leases after: $(ls "$ISOLA_ROOT/run/net/leases/bridge" | wc -l)"
echo "containers after: $($ISOLA ps -aq | wc -l)"
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    for said in [
        "isola: -p 0.0.0.0:7000->80/tcp: host port 7000/tcp on 0.0.0.0 is already in use\n",
        "isola: -p 0.0.0.0:7001->80/tcp: host port 7001/tcp is already published by another workload\n",
        "isola: -p \"80:x\": port \"x\" is not a port (1-65535)",
        "isola: -p \"1.2.3.4.5:80:80\": \"1.2.3.4.5\" is not an IPv4 address",
        "isola: -p 10.9.9.9:8080->80/tcp: cannot listen on 10.9.9.9:8080/tcp: Cannot assign requested address",
        "isola: -p 8080:80: publishing a port needs a bridge network (--network bridge or a network of `isola network ls`), not --network none\n",
        "not --network host\n",
    ] {
        assert!(err.contains(said), "{said}\n---\n{out}{err}");
    }
    for code in [
        "held by the host: 125\n",
        "held by a workload: 125\n",
        "claims while one runs: 1\n",
        "malformed: 125\n",
        "bad address: 125\n",
        "not the host's: 125\n",
        "no bridge: 125\n",
        "host: 125\n",
        "rules after: 0\nclaims after: 0\nleases after: 0\ncontainers after: 0\n",
    ] {
        assert!(out.contains(code), "{code}\n---\n{out}{err}");
    }
    env.assert_clean();
}

#[test]
fn outbound_traffic_leaves_behind_the_hosts_address() {
    let env = Env::new();
    let script = r#"
set -e
# "Out there": a namespace of this test's, on a veth from this one, with no route back to
# any isola network: only masquerading lets an answer return.
unshare -n sleep 120 & outside=$!
sleep 0.2
ip link add out0 type veth peer name out1
ip link set out1 netns $outside
ip addr add 192.0.2.1/24 dev out0; ip link set out0 up
nsenter -t $outside -n sh -c 'ip link set lo up; ip addr add 192.0.2.2/24 dev out1; ip link set out1 up'
nsenter -t $outside -n $NETECHO peer 9000 & server=$!
sleep 0.3
echo "seen out there: $($ISOLA run --rm --network bridge sample netecho ask tcp 192.0.2.2:9000 hi)"
wait $server
kill $outside
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("seen out there: 192.0.2.1\n"), "{out}{err}");
    env.assert_clean();
}

#[test]
fn a_workload_that_joins_later_is_named_to_those_already_there_until_it_leaves() {
    let env = Env::new();
    let script = r#"
$ISOLA network create --subnet 10.96.0.0/24 late >/dev/null || exit 9
# The watcher is there first; it sees "newcomer" appear in its /etc/hosts, reaches it by
# that name, and sees the name go when the newcomer ends.
$ISOLA run --rm --name watcher --network late sample sh -c '
  i=0; until grep -qw newcomer /etc/hosts; do i=$((i+1)); [ $i -lt 300 ] || exit 3; sleep 0.1; done
  echo "named: $(grep -w newcomer /etc/hosts | cut -f1)"
  echo "reached: $(nc -w 10 newcomer 8080)"
  i=0; while grep -qw newcomer /etc/hosts; do i=$((i+1)); [ $i -lt 300 ] || exit 4; sleep 0.1; done
  echo "name gone"' > "$ISOLA_ROOT/watcher.out" &
watcher=$!
wait_leases late 1
$ISOLA run --rm --name newcomer --network late sample sh -c 'echo from-newcomer | nc -l -p 8080'
wait $watcher; echo "watcher exit: $?"
cat "$ISOLA_ROOT/watcher.out"
$ISOLA network rm late >/dev/null
"#;
    let (code, out, err) = in_own_netns(&env, script);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("watcher exit: 0\nnamed: 10.96.0.3\nreached: from-newcomer\nname gone\n"),
        "{out}{err}"
    );
    env.assert_clean();
}
