//! The floor reference: the least a TCP agent-check responder can do per
//! check, for the report to set the agent's cost against. This program
//! becomes it when started with the hidden first argument `ARG`; the
//! `phases::floor_run` starts it (`agent::Role::Floor`) and loads it like
//! the agent.

use std::io::Write;
use std::process::ExitCode;

/// The hidden first argument that makes this program the floor reference.
pub const ARG: &str = "--floor-server";

/// Serves as the floor until killed: accept -> write the reply -> close,
/// blocking, one thread, no runtime (std's accept is one accept4 call). Run as a child process so that its
/// CPU time is read from /proc exactly like the agent's. With `--drain` it
/// also drops an agent-send payload with one non-blocking recv before the
/// close, as hapgent does, so that the close does not reset the reply.
pub fn serve(drain: bool) -> ExitCode {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("floor: cannot bind 127.0.0.1:0: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("floor listening on {addr}"),
        Err(e) => {
            eprintln!("floor: {e}");
            return ExitCode::from(1);
        }
    }
    loop {
        let Ok((mut conn, _)) = listener.accept() else {
            continue;
        };
        let _ = conn.write(b"up ready 100%\n");
        if drain {
            use std::os::fd::AsRawFd;
            let mut buf = [0u8; 512];
            // SAFETY: buf is live and as long as declared.
            unsafe {
                libc::recv(
                    conn.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
        }
    }
}
