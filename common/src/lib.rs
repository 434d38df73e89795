//! What `hapgent` (the agent on each backend) and `hapgent-lb` (the
//! companion on the load balancer) really share, and nothing else.
//!
//! - [`log`]: the one-line stderr logger, journald-aware, with the program
//!   name set once at start ([`log::init`]) and the `info!`, `warn!` and
//!   `error!` macros.
//! - [`out`]: a command's output on stdout, ending quietly when the reader
//!   has gone (`| head -1`), with the `out!` and `outln!` macros.
//! - [`atomic`]: replacing a file so that readers see the old or the new
//!   content, never a mix ([`atomic::replace`]).
//! - [`conffile`]: a packaged configuration file held to the settings
//!   table: every setting shown, examples at their defaults and valid.
//! - [`creds`]: a Unix-socket peer's credentials as the kernel recorded
//!   them (SO_PEERCRED, SO_PEERGROUPS), and user and group names.
//! - [`files`]: reading a small file someone else controls without
//!   hanging on a FIFO or reading `/dev/zero` forever
//!   ([`files::read_regular`]).
//! - [`process`]: running a command with a deadline, after which its
//!   whole process group is killed and reaped ([`process::run`]).
//! - [`config`]: the front door to a program's configuration: a spec
//!   (name, environment prefix, default file, settings table) loaded
//!   through the four layers, and the process environment as text.
//! - [`duration`]: the one grammar of a duration typed on a command line
//!   (`500ms`, `1.5s`, `2min`, `1h`), read exactly ([`duration::parse`]).
//! - [`layer`]: the figment building blocks of "defaults < file < env <
//!   flags" configuration that can name the source of every value.
//! - [`settings`]: the one description of each setting (key, variable,
//!   flag, default, help, checks) that flags, usage text, checks and the
//!   README's table are made from.
//! - [`slots`]: a budget of connections served at once, each place given
//!   back when its slot is dropped.
//! - [`unix_socket`]: a daemon's listening socket file: created atomically
//!   with its mode and group, refused while another instance answers,
//!   removed at stop only if it is still ours.
//! - [`serving`]: accepting on a daemon's listeners with backoff
//!   ([`serving::accept_loop`]), and closing a connection without
//!   destroying its answer ([`serving::linger`]).
//!
//! No networking beyond a daemon's own listeners, and no dependency the
//! agent does not already carry: this crate must never make the agent
//! binary larger.

// `unsafe` only where no safe API exists, allowed by name in that module.
#![deny(unsafe_code)]

pub mod atomic;
pub mod conffile;
pub mod config;
pub mod creds;
pub mod duration;
pub mod files;
pub mod layer;
pub mod log;
pub mod out;
pub mod process;
pub mod serving;
pub mod settings;
pub mod slots;
pub mod unix_socket;
