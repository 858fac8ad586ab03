//! The command line's arguments: `--name VALUE` options, `--flag` switches,
//! repeatable options collected in order.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The options of one command, parsed against the names it accepts.
pub struct Options {
    values: BTreeMap<&'static str, Vec<String>>,
    flags: Vec<&'static str>,
}

impl Options {
    /// Parses `args`: each of `valued` takes the next argument, each of `flags`
    /// stands alone; anything else is a usage error.
    pub fn parse(
        args: &[String],
        valued: &[&'static str],
        flags: &[&'static str],
    ) -> Result<Options, String> {
        let mut options = Options {
            values: BTreeMap::new(),
            flags: Vec::new(),
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            if let Some(name) = valued.iter().find(|name| **name == arg) {
                let value = rest.next().ok_or_else(|| format!("{arg} needs a value"))?;
                options.values.entry(name).or_default().push(value.clone());
            } else if let Some(name) = flags.iter().find(|name| **name == arg) {
                options.flags.push(name);
            } else {
                return Err(format!("unexpected argument `{arg}`"));
            }
        }
        Ok(options)
    }

    /// The last value of `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value of a repeatable option, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value of `name`, or a usage error naming the command.
    pub fn required(&self, name: &str, command: &str) -> Result<&str, String> {
        self.value(name)
            .ok_or_else(|| format!("`{command}` needs {name} {}", placeholder(name)))
    }

    /// `--config FILE`, required.
    pub fn config(&self, command: &str) -> Result<PathBuf, String> {
        self.required("--config", command).map(PathBuf::from)
    }

    /// Whether the switch was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }
}

fn placeholder(name: &str) -> String {
    name.trim_start_matches('-').to_uppercase()
}
