//! The plugin registry: the environment and method types experiment files can name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::envs::{EnvFactory, EnvPlugin, RunServices};
use crate::methods::DynMethodType;
use crate::spec::SpecProblem;

/// The environment and method types experiment files can name: the built-in ones and any a
/// user registers in code.
#[derive(Clone)]
pub struct Registry {
    pub(crate) envs: BTreeMap<String, EnvFactory>,
    pub(crate) methods: BTreeMap<String, Arc<dyn DynMethodType>>,
}

impl Registry {
    /// The built-in environments (`frozenlake`, `python`, `terminalbench`) and method types.
    pub fn builtin() -> Self {
        let mut r = Registry {
            envs: BTreeMap::new(),
            methods: BTreeMap::new(),
        };
        r.envs.insert("frozenlake".into(), Arc::new(crate::envs::frozenlake));
        r.envs.insert("python".into(), Arc::new(crate::envs::python));
        r.envs
            .insert("terminalbench".into(), Arc::new(crate::envs::terminalbench));
        for (name, t) in crate::methods::builtin() {
            r.methods.insert(name.into(), t);
        }
        r
    }

    /// Registers (or replaces) an environment type.
    pub fn environment<F>(mut self, name: &str, factory: F) -> Self
    where
        F: Fn(&toml::Table, &dyn RunServices) -> std::result::Result<Arc<dyn EnvPlugin>, SpecProblem>
            + Send
            + Sync
            + 'static,
    {
        self.envs.insert(name.into(), Arc::new(factory));
        self
    }

    /// Registers (or replaces) a method type.
    pub fn method(mut self, name: &str, t: Arc<dyn DynMethodType>) -> Self {
        self.methods.insert(name.into(), t);
        self
    }

    /// The method types, by name.
    pub fn method_types(&self) -> &BTreeMap<String, Arc<dyn DynMethodType>> {
        &self.methods
    }

    /// The environment type names.
    pub fn environment_types(&self) -> Vec<String> {
        self.envs.keys().cloned().collect()
    }
}
