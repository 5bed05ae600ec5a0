//! Reading one variable through its row of the settings table: the text as set, or the row's
//! default, parsed with an error that names the variable and the value. Every accessor takes a
//! row, never a free name, so a variable missing from the table cannot be read.

use super::table::{self, Lambda, Setting};
use super::{invalid, parse_duration, ConfigError};
use std::time::Duration;

const AT_LEAST_ONE: &str = "expected a whole number of at least 1";

pub(super) struct Env<'a>(pub(super) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// The variable as set, `None` when it is not.
    pub(super) fn get(&self, setting: &Setting) -> Option<String> {
        debug_assert!(
            table::is_listed(setting),
            "{} is read but missing from config/table.rs's SETTINGS",
            setting.name
        );
        (self.0)(setting.name)
    }

    /// A variable Lambda sets.
    pub(super) fn lambda(&self, variable: Lambda) -> Option<String> {
        (self.0)(variable.name())
    }

    /// The variable as set, else its default's text (empty when it has no default value).
    pub(super) fn text(&self, setting: &Setting) -> String {
        self.get(setting)
            .unwrap_or_else(|| setting.unset.text().to_owned())
    }

    /// One of `choices`, by its exact spelling.
    pub(super) fn choice<T: Copy>(
        &self,
        setting: &Setting,
        choices: &[(&str, T)],
        reason: &str,
    ) -> Result<T, ConfigError> {
        pick(setting, &self.text(setting), choices, reason)
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        setting: &Setting,
        reason: &str,
    ) -> Result<T, ConfigError> {
        let raw = self.text(setting);
        raw.trim()
            .parse()
            .map_err(|_| invalid(setting.name, &raw, reason))
    }

    pub(super) fn positive(&self, setting: &Setting) -> Result<usize, ConfigError> {
        let n: usize = self.parse(setting, AT_LEAST_ONE)?;
        if n == 0 {
            return Err(invalid(setting.name, "0", AT_LEAST_ONE));
        }
        Ok(n)
    }

    /// As [`Env::positive`], with a default worked out at start-up instead of the row's.
    pub(super) fn positive_or(
        &self,
        setting: &Setting,
        default: usize,
    ) -> Result<usize, ConfigError> {
        match self.get(setting) {
            None => Ok(default),
            Some(_) => self.positive(setting),
        }
    }

    pub(super) fn duration(&self, setting: &Setting) -> Result<Duration, ConfigError> {
        let raw = self.text(setting);
        parse_duration(&raw).ok_or_else(|| {
            invalid(
                setting.name,
                &raw,
                "expected a duration such as 500ms, 10s, 5m or 1h",
            )
        })
    }

    pub(super) fn nonzero_duration(&self, setting: &Setting) -> Result<Duration, ConfigError> {
        let d = self.duration(setting)?;
        if d.is_zero() {
            return Err(invalid(setting.name, "0", "must be longer than zero"));
        }
        Ok(d)
    }

    /// A duration where 0 turns the feature off.
    pub(super) fn optional_duration(
        &self,
        setting: &Setting,
    ) -> Result<Option<Duration>, ConfigError> {
        let d = self.duration(setting)?;
        Ok((!d.is_zero()).then_some(d))
    }
}

/// The choice `raw` spells exactly, or an error naming the variable and `raw`.
pub(super) fn pick<T: Copy>(
    setting: &Setting,
    raw: &str,
    choices: &[(&str, T)],
    reason: &str,
) -> Result<T, ConfigError> {
    choices
        .iter()
        .find(|(spelling, _)| *spelling == raw)
        .map(|&(_, value)| value)
        .ok_or_else(|| invalid(setting.name, raw, reason))
}

/// How `value` is spelled among `choices`: the text `SHOW CONFIG` shows for it.
pub(super) fn spelling<T: PartialEq>(choices: &[(&'static str, T)], value: T) -> String {
    let found = choices.iter().find(|(_, choice)| *choice == value);
    found.map_or("", |(spelling, _)| spelling).to_owned()
}
