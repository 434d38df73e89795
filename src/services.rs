//! The set of services served: the default one (the top-level settings)
//! first, then each `[services.NAME]`, found by name or number.
//!
//! A reload keeps a service whose files did not change, with its state and
//! version, starts afresh one whose files changed, and stops a removed one
//! (dropping its task stops its loops). The I/O a new service needs (its
//! state file read, temporary files of interrupted saves removed) is done
//! beforehand by `Start::run`, which the agent runs on the disk thread at a
//! reload, so a slow disk never stalls the probes. What one service does is
//! `service`'s; this module only keeps the set.

use crate::config::Config;
use crate::info;
use crate::service::{Files, Service};
use crate::state::{self, Problem, State};
use smol::Task;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Every service `config` asks for, the default first.
pub fn wanted(config: &Config) -> Vec<Files> {
    let default = Files {
        name: String::new(),
        state_file: config.state_file.clone(),
        drain_file: config.drain_file.clone(),
        maint_file: config.maint_file.clone(),
    };
    let named = config.services.iter().map(|(name, s)| Files {
        name: name.clone(),
        state_file: s.state_file.clone(),
        drain_file: s.drain_file.clone(),
        maint_file: s.maint_file.clone(),
    });
    std::iter::once(default).chain(named).collect()
}

/// What people call the default service, whose own name is empty (so no
/// configured service may be called this).
const DEFAULT: &str = crate::config::DEFAULT_SERVICE;

/// The name a service is looked up by: `default` is the default service's.
pub fn lookup_name(name: &str) -> &str {
    if name == DEFAULT { "" } else { name }
}

/// The name of a service for people (`hapgent ctl`, metric labels):
/// `default` for the default one.
pub fn label(name: &str) -> &str {
    crate::config::service_label(name)
}

/// What starting the services of a new configuration reads and cleans:
/// made by `Services::to_start`, carried out by `run` (on the disk thread).
#[derive(Debug, PartialEq, Eq)]
pub struct Start {
    /// State files of the services to be started, to read.
    pub load: Vec<PathBuf>,
    /// State files no running service uses, whose interrupted saves'
    /// temporary files are removed.
    pub clean: Vec<PathBuf>,
}

/// The state files read for the services about to start.
pub type Loaded = HashMap<PathBuf, Result<State, Problem>>;

impl Start {
    /// Removes stale temporary files (each directory read once), then
    /// reads each state file.
    pub fn run(self) -> Loaded {
        for stale in hapgent_common::atomic::remove_stale(self.clean.iter().map(PathBuf::as_path)) {
            info!("removed {}, left by an interrupted save", stale.display());
        }
        self.load
            .into_iter()
            .map(|path| {
                let loaded = state::load(&path);
                (path, loaded)
            })
            .collect()
    }
}

/// The services, each with the task that keeps its file in step.
#[derive(Default)]
pub struct Services {
    list: Vec<(Rc<Service>, Task<()>)>,
    by_name: HashMap<Rc<str>, usize>,
    /// The number the next service started gets: no two services of this
    /// process ever share one, so tables keyed by it cannot mix them up.
    next_id: u32,
}

impl Services {
    /// What `update` to `wanted` will need read and cleaned: the state
    /// files of the services it starts, and of those no running service
    /// uses (a running one may be saving).
    pub fn to_start(&self, wanted: &[Files]) -> Start {
        let known: HashSet<&Path> = self.list.iter().map(|(s, _)| s.state_file()).collect();
        let kept = |w: &Files| self.get_exact(&w.name).is_some_and(|s| s.files() == *w);
        Start {
            load: wanted
                .iter()
                .filter(|w| !kept(w))
                .map(|w| w.state_file.clone())
                .collect(),
            clean: wanted
                .iter()
                .map(|w| w.state_file.clone())
                .filter(|p| !known.contains(p.as_path()))
                .collect(),
        }
    }

    fn get_exact(&self, name: &str) -> Option<&Rc<Service>> {
        let i = *self.by_name.get(name)?;
        Some(&self.list[i].0)
    }

    /// Makes the set match `wanted`: services whose files did not change
    /// are kept, others started from their state file as `loaded` holds it
    /// (see `to_start`; read here if missing) with `start` spawning the
    /// task that keeps a new one's file in step; removed ones stopped.
    pub fn update(
        &mut self,
        wanted: Vec<Files>,
        mut loaded: Loaded,
        mut start: impl FnMut(Rc<Service>) -> Task<()>,
    ) {
        let mut old: HashMap<Rc<str>, (Rc<Service>, Task<()>)> = self
            .list
            .drain(..)
            .map(|(s, t)| (Rc::clone(&s.name), (s, t)))
            .collect();
        let mut list = Vec::with_capacity(wanted.len());
        for files in wanted {
            let kept = old
                .remove(files.name.as_str())
                .filter(|(s, _)| s.files() == files);
            let entry = kept.unwrap_or_else(|| {
                let state = loaded
                    .remove(&files.state_file)
                    .unwrap_or_else(|| state::load(&files.state_file));
                let service = Rc::new(Service::new(self.next_id, files, state));
                self.next_id += 1;
                let task = start(Rc::clone(&service));
                (service, task)
            });
            list.push(entry);
        }
        // Dropping the old entries' tasks stops their loops.
        drop(old);
        self.by_name = list
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (Rc::clone(&s.name), i))
            .collect();
        self.list = list;
    }

    /// Every service, the default first.
    pub fn all(&self) -> Vec<Rc<Service>> {
        self.list.iter().map(|(s, _)| Rc::clone(s)).collect()
    }

    /// The default service (`None` only once stopped).
    pub fn default_service(&self) -> Option<Rc<Service>> {
        self.list.first().map(|(s, _)| Rc::clone(s))
    }

    /// The service called `name` (empty or `default`: the default one).
    pub fn get(&self, name: &str) -> Option<Rc<Service>> {
        let i = *self.by_name.get(lookup_name(name))?;
        Some(Rc::clone(&self.list[i].0))
    }

    /// How many services, the default included.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The service numbered `id`.
    pub fn by_id(&self, id: u32) -> Option<Rc<Service>> {
        self.list
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(s, _)| Rc::clone(s))
    }

    /// Stops every service's loops, returning the services (to save their
    /// latest state once more).
    pub fn stop(&mut self) -> Vec<Rc<Service>> {
        self.by_name.clear();
        self.list
            .drain(..)
            .map(|(service, _task)| service)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceConfig;
    use smol::LocalExecutor;
    use std::collections::BTreeMap;

    fn files(name: &str, state: &str, drain: Option<&str>) -> Files {
        Files {
            name: name.into(),
            state_file: PathBuf::from(state),
            drain_file: drain.map(PathBuf::from),
            maint_file: None,
        }
    }

    #[test]
    fn wanted_lists_the_default_first() {
        let config = Config {
            state_file: PathBuf::from("/s/default.json"),
            maint_file: Some(PathBuf::from("/m")),
            services: [
                (
                    "web".to_string(),
                    ServiceConfig {
                        state_file: PathBuf::from("/s/web.json"),
                        drain_file: Some(PathBuf::from("/d")),
                        maint_file: None,
                        checks: BTreeMap::new(),
                        maxconn_total: None,
                    },
                ),
                (
                    "api".to_string(),
                    ServiceConfig {
                        state_file: PathBuf::from("/s/api.json"),
                        drain_file: None,
                        maint_file: None,
                        checks: BTreeMap::new(),
                        maxconn_total: None,
                    },
                ),
            ]
            .into(),
            ..Config::default()
        };
        let default = Files {
            maint_file: Some(PathBuf::from("/m")),
            ..files("", "/s/default.json", None)
        };
        assert_eq!(
            wanted(&config),
            [
                default,
                files("api", "/s/api.json", None),
                files("web", "/s/web.json", Some("/d")),
            ]
        );
    }

    #[test]
    fn the_default_service_is_called_default() {
        // (name asked for, name looked up)
        for (asked, name) in [
            ("default", ""),
            ("", ""),
            ("api", "api"),
            ("Default", "Default"),
        ] {
            assert_eq!(lookup_name(asked), name, "{asked:?}");
        }
        // (name, label)
        for (name, shown) in [("", "default"), ("api", "api")] {
            assert_eq!(label(name), shown, "{name:?}");
            assert_eq!(lookup_name(label(name)), name, "{name:?}");
        }
    }

    #[test]
    fn reloads_keep_services_whose_files_did_not_change() {
        let ex = LocalExecutor::new();
        let dir = Path::new("/nonexistent/hapgent-services-test");
        let path = |f: &str| dir.join(f).display().to_string();
        let (a, b, c) = (path("a.json"), path("b.json"), path("c.json"));
        // (services wanted, the number each then has: kept or new)
        let steps: Vec<(Vec<Files>, Vec<u32>)> = vec![
            (vec![files("", &a, None)], vec![0]),
            (vec![files("", &a, None), files("x", &b, None)], vec![0, 1]),
            // Unchanged: kept.
            (vec![files("", &a, None), files("x", &b, None)], vec![0, 1]),
            // A flag file added: started afresh.
            (
                vec![files("", &a, None), files("x", &b, Some("/d"))],
                vec![0, 2],
            ),
            // Another state file: started afresh; a removed one is stopped.
            (vec![files("", &c, None)], vec![3]),
            // Back again: a new number, never a removed one's.
            (
                vec![files("", &c, None), files("x", &b, Some("/d"))],
                vec![3, 4],
            ),
        ];
        let mut services = Services::default();
        for (wanted, ids) in steps {
            let names: Vec<String> = wanted.iter().map(|f| f.name.clone()).collect();
            let start = services.to_start(&wanted);
            let fresh = ids
                .iter()
                .filter(|id| services.by_id(**id).is_none())
                .count();
            assert_eq!(start.load.len(), fresh, "{names:?}");
            services.update(wanted, start.run(), |_| ex.spawn(async {}));
            let got: Vec<u32> = services.all().iter().map(|s| s.id).collect();
            assert_eq!(got, ids, "{names:?}");
            assert_eq!(services.len(), ids.len());
            assert_eq!(services.get("default").map(|s| s.id), Some(ids[0]));
            for (name, id) in names.iter().zip(&ids) {
                assert_eq!(services.get(name).map(|s| s.id), Some(*id));
                assert_eq!(
                    services.by_id(*id).map(|s| s.name.to_string()),
                    Some(name.clone())
                );
            }
        }
        assert_eq!(services.stop().len(), 2);
        assert_eq!(services.len(), 0);
        assert!(services.default_service().is_none());
    }
}
