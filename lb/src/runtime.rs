//! A client for HAProxy's CLI sockets: the runtime API (`stats socket …
//! level admin`) and the master CLI (`haproxy -W -S PATH`).
//!
//! One command per connection: connect, send the line, half-close, read
//! until HAProxy closes. `show stat` and `show servers state`, which grow
//! with the number of servers, are read line by line into `stat`'s readers
//! as they arrive, so only one line of the answer is held at a time
//! (`query_lines`); shorter answers are read whole (`query`). Commands are built here only from fixed words and
//! names already checked by `names`; this module takes no free text from
//! callers. Every call has a deadline, so a wedged HAProxy cannot hang a
//! request or `wait`.

use crate::procs::{self, Procs};
use crate::stat::{self, Backend};
use smol::Async;
use smol::future::FutureExt;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest time one CLI exchange may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// Largest answer read; `show stat` for thousands of servers fits.
const MAX_ANSWER: u64 = 64 << 20;

/// Longest line of an answer read by `query_lines`: a `show stat` row is a
/// few hundred bytes, its free-text columns included.
const MAX_LINE: usize = 1 << 20;

/// Sends one command and returns HAProxy's whole answer.
pub async fn query(socket: &Path, command: &str) -> Result<String, String> {
    debug_assert!(!command.contains(['\n', ';']));
    let exchange = async {
        let mut stream = Async::<UnixStream>::connect(socket)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        (&mut stream)
            .take(MAX_ANSWER)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    };
    let timeout = async {
        smol::Timer::after(DEADLINE).await;
        Err(format!("no complete answer within {}s", DEADLINE.as_secs()))
    };
    exchange.or(timeout).await.map_err(|e: String| {
        format!(
            "HAProxy socket {} ({command:?}): {e} (is HAProxy running with this socket at level admin?)",
            socket.display()
        )
    })
}

/// Why a line-by-line exchange failed: the exchange itself, or what the
/// caller's `line` made of the answer.
enum Failure {
    Exchange(String),
    Answer(String),
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Failure {
    move |e| Failure::Exchange(format!("{what}: {e}"))
}

/// Runs one step of an exchange within `DEADLINE`, and words its failure
/// as `query` does.
async fn within<T>(
    socket: &Path,
    command: &str,
    step: impl Future<Output = Result<T, Failure>>,
) -> Result<T, String> {
    let timeout = async {
        smol::Timer::after(DEADLINE).await;
        Err(Failure::Exchange(format!(
            "no complete answer within {}s",
            DEADLINE.as_secs()
        )))
    };
    step.or(timeout).await.map_err(|f| match f {
        Failure::Exchange(e) => format!(
            "HAProxy socket {} ({command:?}): {e} (is HAProxy running with this socket at level admin?)",
            socket.display()
        ),
        Failure::Answer(e) => format!("HAProxy socket {}: {e}", socket.display()),
    })
}

/// Connects and sends one command; HAProxy starts answering while the
/// caller does something else (`read_lines` takes the answer).
async fn send(socket: &Path, command: &str) -> Result<Async<UnixStream>, String> {
    debug_assert!(!command.contains(['\n', ';']));
    within(socket, command, async {
        let mut stream = Async::<UnixStream>::connect(socket)
            .await
            .map_err(io("connect"))?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io("send"))?;
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
        Ok(stream)
    })
    .await
}

/// Hands each line of the answer to `command`, sent on `stream`, to `line`
/// as it arrives (without its line ending, as `stat::answer_line` makes
/// it), holding one line at a time; stops at the first error `line`
/// returns.
async fn read_lines(
    socket: &Path,
    command: &str,
    stream: Async<UnixStream>,
    mut line: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    within(socket, command, async {
        let mut reader = BufReader::with_capacity(64 << 10, stream.take(MAX_ANSWER));
        // Lines are handed over from the reader's buffer where they lie
        // whole; only a line cut across two reads is copied, into `cut`.
        let mut cut: Vec<u8> = Vec::new();
        loop {
            let buf = reader.fill_buf().await.map_err(io("read"))?;
            let read = buf.len();
            if read == 0 {
                if !cut.is_empty() {
                    line(&stat::answer_line(&cut)).map_err(Failure::Answer)?;
                }
                return Ok(());
            }
            let mut rest = buf;
            while let Some(end) = rest.iter().position(|b| *b == b'\n') {
                let (raw, after) = rest.split_at(end + 1);
                if cut.is_empty() {
                    line(&stat::answer_line(raw)).map_err(Failure::Answer)?;
                } else {
                    cut.extend_from_slice(raw);
                    line(&stat::answer_line(&cut)).map_err(Failure::Answer)?;
                    cut.clear();
                }
                rest = after;
            }
            if cut.len() + rest.len() > MAX_LINE {
                return Err(Failure::Answer(format!(
                    "{command:?} answered a line longer than {MAX_LINE} bytes"
                )));
            }
            cut.extend_from_slice(rest);
            reader.consume(read);
        }
    })
    .await
}

/// Sends one command and hands each line of HAProxy's answer to `line` as
/// it arrives, holding one line at a time (see `read_lines`).
pub async fn query_lines(
    socket: &Path,
    command: &str,
    line: impl FnMut(&str) -> Result<(), String>,
) -> Result<(), String> {
    let stream = send(socket, command).await?;
    read_lines(socket, command, stream, line).await
}

/// Every backend and server, from `show servers state` and `show stat`,
/// each read line by line into `stat`'s readers. `show stat` is sent
/// first, so that HAProxy writes it (the longer answer) while `show
/// servers state` is read.
pub async fn backends(socket: &Path) -> Result<Vec<Backend>, String> {
    read_backends(socket, stat::StateReader::default()).await
}

/// One backend, if HAProxy has it: the same answers, keeping only its
/// rows while reading them.
pub async fn backend(socket: &Path, name: &str) -> Result<Option<Backend>, String> {
    let backends = read_backends(socket, stat::StateReader::only(name)).await?;
    Ok(backends.into_iter().next())
}

async fn read_backends(
    socket: &Path,
    mut states: stat::StateReader,
) -> Result<Vec<Backend>, String> {
    let answer = |e| format!("HAProxy socket {}: {e}", socket.display());
    let stat_answer = send(socket, "show stat").await?;
    query_lines(socket, "show servers state", |l| states.line(l)).await?;
    let mut servers = stat::StatReader::new(states.finish().map_err(answer)?);
    read_lines(socket, "show stat", stat_answer, |l| servers.line(l)).await?;
    servers.finish().map_err(answer)
}

/// The PID of the process answering on the runtime API socket.
pub async fn pid(socket: &Path) -> Result<u32, String> {
    let info = query(socket, "show info").await?;
    stat::info_pid(&info).ok_or_else(|| {
        format!(
            "HAProxy socket {}: `show info` has no Pid line",
            socket.display()
        )
    })
}

/// The master, its reload counters and workers, from the master CLI.
pub async fn procs(master: &Path) -> Result<Procs, String> {
    let text = query(master, "show proc").await?;
    procs::parse(&text).map_err(|e| format!("master socket {}: {e}", master.display()))
}

/// Sleeps for `d` (a named helper keeps polling loops readable).
pub async fn sleep(d: Duration) {
    smol::Timer::after(d).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    /// A one-connection server at a fresh socket path that reads the
    /// command line and writes `answer` `chunk` bytes at a time.
    fn server(name: &str, answer: Vec<u8>, chunk: usize) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "hapgent-lb-runtime-{}-{name}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut command = [0u8; 64];
            let _ = s.read(&mut command);
            for piece in answer.chunks(chunk) {
                if s.write_all(piece).is_err() {
                    return;
                }
            }
        });
        path
    }

    fn lines_of(path: &Path) -> Result<Vec<String>, String> {
        let mut got = Vec::new();
        smol::block_on(query_lines(path, "show stat", |l| {
            got.push(l.to_string());
            Ok(())
        }))?;
        Ok(got)
    }

    #[test]
    fn lines_cut_anywhere_arrive_whole() {
        let answer = "# pxname,svname\r\nweb,web1\n\nweb,w\u{e9}b2\napi,api1";
        for chunk in [1, 2, 3, 7, 64, 1 << 16] {
            let path = server(&format!("cut{chunk}"), answer.as_bytes().to_vec(), chunk);
            assert_eq!(
                lines_of(&path).unwrap(),
                answer.lines().collect::<Vec<_>>(),
                "chunks of {chunk}"
            );
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn a_line_over_the_cap_is_an_error() {
        let mut answer = b"# pxname\n".to_vec();
        answer.resize(answer.len() + MAX_LINE + 1, b'x');
        let path = server("long", answer, 1 << 16);
        let err = lines_of(&path).unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.contains(&format!("answered a line longer than {MAX_LINE} bytes")),
            "{err}"
        );
    }
}
