//! Small process and filesystem helpers shared by the harness: finding external tools, free ports,
//! temporary directories, running commands (optionally as the `postgres` user) with timeouts.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// A TCP port on 127.0.0.1 that was free a moment ago (a bind to it worked). A port is never
/// handed out twice within one test process.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    // Below Linux's ephemeral range (32768 and up), where the kernel puts every listener bound
    // to port 0 (lambda-simulator's, pgwarm's telemetry receiver) and every outgoing
    // connection: a port handed out here cannot be taken by one of those between the moment it
    // is found free and the moment the server it is for binds it.
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    // Processes start at different places; 31 and SPAN share no factor, so every port is tried.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for i in 0..SPAN {
        let port = (FIRST + (start + i * 31) % SPAN) as u16;
        if !given.lock().unwrap().insert(port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "could not find a free TCP port on 127.0.0.1 between {FIRST} and {}",
        FIRST + SPAN
    );
}

/// Find an external tool (psql, pgbench, pgbouncer, moto_server, initdb, ...): `PATH` first, then
/// the PostgreSQL server bindir, then the usual sbin / pip `--user` locations.
///
/// A missing tool is a test failure naming the package to install; tests never skip silently.
pub fn tool(name: &str) -> PathBuf {
    try_tool(name).unwrap_or_else(|| {
        panic!(
            "required tool `{name}` was not found on PATH nor in {:?}: install the {} \
             (scripts/test.sh installs everything the tests need)",
            fallback_dirs(),
            package_hint(name)
        )
    })
}

/// Like [`tool`], but `None` when the tool is missing.
pub fn try_tool(name: &str) -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(fallback_dirs())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Where a tool is looked for after `PATH`.
fn fallback_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(bindir) = crate::harness::pg::try_server_bindir() {
        dirs.push(bindir);
    }
    for d in ["/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".local/bin"));
    }
    dirs
}

/// The package that provides `tool`, for error messages.
pub fn package_hint(tool: &str) -> String {
    match tool {
        "psql" | "pgbench" | "pg_isready" => "Debian package `postgresql-client`".into(),
        "initdb" | "pg_ctl" | "postgres" => "Debian package `postgresql` (the server)".into(),
        "pgbouncer" => "Debian package `pgbouncer`".into(),
        "haproxy" => "Debian package `haproxy`".into(),
        "gnuplot" => "Debian package `gnuplot-nox`".into(),
        "prometheus-pgbouncer-exporter" => "Debian package `prometheus-pgbouncer-exporter`".into(),
        "moto_server" => "PyPI package `moto[server]` (`pip install 'moto[server]'`)".into(),
        other => format!("package that provides `{other}`"),
    }
}

pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True when the test process runs as root (then PostgreSQL and PgBouncer must run as `postgres`).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id")
            .arg("-u")
            .output()
            .expect("run `id -u` to find out whether the tests run as root");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// A command that runs `program` as the `postgres` user when we are root (through
/// `runuser -u postgres --`), or as ourselves otherwise.
pub fn as_postgres(program: impl AsRef<OsStr>) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// Give `path` (recursively) to the `postgres` user when running as root; no-op otherwise.
pub fn chown_postgres(path: &Path) {
    if !is_root() {
        return;
    }
    let out = Command::new("chown")
        .arg("-R")
        .arg("postgres:")
        .arg(path)
        .output()
        .expect("spawn chown");
    if !out.status.success() {
        panic!(
            "chown -R postgres: {} failed (does the `postgres` user exist? install the Debian \
             package `postgresql`): {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `n` random bytes as lowercase hex (std only: seeded from the OS through `RandomState`).
pub fn random_hex(n_bytes: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut s = String::with_capacity(n_bytes * 2);
    while s.len() < n_bytes * 2 {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let v = RandomState::new().hash_one((
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::process::id(),
        ));
        s.push_str(&format!("{v:016x}"));
    }
    s.truncate(n_bytes * 2);
    s
}

/// A directory under the system temp dir, removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Create `<tmp>/<prefix>-<pid>-<random>` with mode 0755 (so the `postgres` user can traverse it).
    pub fn new(prefix: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), random_hex(4)));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create temp dir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory on disk (it is not removed on drop); returns its path.
    pub fn into_path(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Run `cmd` to completion (stdin from `input`, or empty), killing it after `timeout`.
/// On timeout the returned status is the kill's status and stderr ends with a note saying so.
/// Panics if the program cannot be spawned.
pub fn output_with_timeout(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    output_noting_timeout(cmd, input, timeout).0
}

/// [`output_with_timeout`], also saying whether the timeout killed the command (a caller that
/// reports why a run failed tells a hang from a crash).
pub fn output_noting_timeout(
    cmd: &mut Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> (Output, bool) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::harness::process_groups::own_group(cmd);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.map(<[u8]>::to_vec).unwrap_or_default();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let (status, timed_out) = wait_timeout(&mut child, timeout);
    let _ = writer.join();
    let stdout = out_reader.join().unwrap_or_default();
    let mut stderr = err_reader.join().unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!("\n[pgwarm-tests: killed after {timeout:?} timeout]\n").as_bytes(),
        );
    }
    let output = Output {
        status,
        stdout,
        stderr,
    };
    (output, timed_out)
}

/// Wait for `child` up to `timeout`; kill it if it is still running. Returns (status, timed_out).
pub fn wait_timeout(child: &mut std::process::Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on a child process") {
            return (status, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return (child.wait().expect("wait after kill"), true);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Run `cmd` (timeout 120 s) and panic, showing stdout and stderr, unless it succeeds.
/// Returns stdout.
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = output_with_timeout(cmd, None, Duration::from_secs(120));
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first line `program arg` prints (stdout, else stderr), e.g. of `postgres --version`; what
/// went wrong, in angle brackets, when it cannot run.
pub fn first_line_of(program: &Path, arg: &str) -> String {
    match Command::new(program).arg(arg).output() {
        Ok(out) => {
            let text = [out.stdout, out.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.lines().next().unwrap_or_default().trim().to_owned()
        }
        Err(e) => format!("<{} {arg}: {e}>", program.display()),
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or `None` after `timeout`.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True when something is listening on TCP `port` (any local address), judged from
/// /proc/net/tcp{,6} so that no probe connection reaches the server. Falls back to a TCP connect
/// to 127.0.0.1 when /proc is unavailable.
pub fn port_is_listening(port: u16) -> bool {
    let mut saw_proc = false;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        saw_proc = true;
        for line in text.lines().skip(1) {
            let mut cols = line.split_whitespace();
            let (Some(_sl), Some(local), Some(_remote), Some(state)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            // state 0A = TCP_LISTEN; local is "ADDR:PORT" in hex.
            if state == "0A" {
                if let Some(p) = local
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    if p == port {
                        return true;
                    }
                }
            }
        }
    }
    if !saw_proc {
        return std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(200),
        )
        .is_ok();
    }
    false
}

/// Send a signal (e.g. "TERM", "STOP", "CONT", "KILL") to `pid` with the `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let out = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .expect("spawn kill");
    if !out.status.success() {
        panic!(
            "kill -{signal} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Spawns `cmd` in `dir` with no stdin and stdout+stderr into `dir/<name>.log`; returns the child
/// and the log's path. Every long-lived process of the harness starts this way.
pub(crate) fn spawn_logged(
    cmd: &mut Command,
    dir: &Path,
    name: &str,
) -> (std::process::Child, PathBuf) {
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
    let log_err = log.try_clone().expect("clone log file handle");
    cmd.current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(log))
        .stderr(std::process::Stdio::from(log_err));
    crate::harness::process_groups::own_group(cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
    (child, log_path)
}

/// The state letter of a process from /proc/PID/stat (`R`, `S`, `T` stopped, `Z` exited but not
/// yet reaped, ...), or `None` when there is no such process.
pub fn process_state(pid: u32) -> Option<char> {
    proc_stat(pid).map(|s| s.state)
}

/// What the harness reads of a process in /proc/PID/stat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name: the executable's file name cut to 15 bytes (or what the process set).
    pub comm: String,
    /// `R`, `S`, `T` stopped, `Z` exited but not yet reaped, ...
    pub state: char,
    pub ppid: u32,
    /// utime + stime: the CPU time of all the process's threads, in clock ticks.
    pub cpu_ticks: u64,
}

/// /proc/PID/stat of `pid`, or `None` when there is no such process.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_proc_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a /proc/PID/stat line. The command name sits between the first `(` and the last `)`
/// and may hold anything, spaces and parentheses included, so the fields are counted from that
/// last `)`: state (field 3), ppid (4), utime (14) and stime (15).
pub fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let (head, rest) = line.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(ProcStat {
        comm,
        state: fields.first()?.chars().next()?,
        ppid: u32::try_from(number(1)?).ok()?,
        cpu_ticks: number(11)? + number(12)?,
    })
}

/// Runs pgbench against `target` and returns what it printed. A run counts as clean only with
/// exit status 0 and no "aborted": pgbench reports 0 failed transactions even when it aborted
/// clients. Killed after 120 s.
pub fn pgbench(target: &crate::harness::pg::Target, args: &[&str]) -> String {
    let mut cmd = pgbench_command(target, args);
    let out = output_with_timeout(&mut cmd, None, Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    assert!(
        !text.contains("aborted"),
        "pgbench {args:?} aborted clients:\n{text}"
    );
    text
}

/// A pgbench command against `target` (its login in libpq's environment) with `args`, not run.
pub fn pgbench_command(target: &crate::harness::pg::Target, args: &[&str]) -> Command {
    let mut cmd = Command::new(tool("pgbench"));
    target.apply_libpq_env(&mut cmd);
    cmd.args(args);
    cmd
}

/// pgbench's "number of transactions actually processed", 0 if it is not in `output`.
pub fn pgbench_processed(output: &str) -> u64 {
    output
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split('/').next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// A process's resident memory in KiB (VmRSS in /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line of /proc/PID/stat, with the command name changed to one that holds what
    /// would fool a parser splitting on spaces or on the first `)`.
    #[test]
    fn a_proc_stat_line_parses_whatever_the_command_name_holds() {
        let line = "31393 (pg (x) ) bench) S 5420 5420 30908 0 -1 4194304 103 0 0 0 \
                    1234 56 7 8 20 0 1 0 2944985 3133440 410 18446744073709551615 0 0 0\n";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                comm: "pg (x) ) bench".into(),
                state: 'S',
                ppid: 5420,
                cpu_ticks: 1234 + 56,
            })
        );
        assert_eq!(parse_proc_stat("31393 (cut short) S 1 2"), None);
        assert_eq!(parse_proc_stat(""), None);
    }

    #[test]
    fn this_process_reads_as_itself() {
        let me = proc_stat(std::process::id()).expect("/proc/self/stat");
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        let exe = std::env::current_exe().expect("current_exe");
        let name = exe.file_name().expect("a file name").to_string_lossy();
        assert!(name.starts_with(&me.comm), "{name} vs comm {:?}", me.comm);
        assert_eq!(proc_stat(u32::MAX), None, "no such pid");
    }
}
