//! A driver's settings from environment variables (`BENCH_*`, `DEMO_*`). Unset or empty means
//! the default, as `${VAR:-x}` does in a shell; a bad value is a message naming the variable and
//! the value, which the driver prints before it exits with status 2.

use std::path::PathBuf;

/// The variable's value, `None` when unset or empty.
pub fn value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A whole number of at least `min` from `name`, `default` when unset.
pub fn number(name: &str, default: u32, min: u32) -> Result<u32, String> {
    parse_number(name, value(name).as_deref(), default, min)
}

fn parse_number(name: &str, value: Option<&str>, default: u32, min: u32) -> Result<u32, String> {
    let Some(value) = value else {
        return Ok(default);
    };
    let what = match min {
        0 => "a whole number".to_owned(),
        1 => "a positive integer".to_owned(),
        _ => format!("a whole number of at least {min}"),
    };
    value
        .parse::<u32>()
        .ok()
        .filter(|n| *n >= min && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{name} must be {what}, got '{value}'"))
}

/// The space-separated whole numbers of `name`, each from `min` to `max` and none twice;
/// `default` when unset; at least one.
pub fn numbers(name: &str, default: &str, min: u32, max: u32) -> Result<Vec<u32>, String> {
    let mut numbers = Vec::new();
    for word in words(name, default)? {
        let n = parse_number(name, Some(&word), 0, min)?;
        if n > max {
            return Err(format!("{name}: {n} is more than {max}"));
        }
        if numbers.contains(&n) {
            return Err(format!("{name}: {n} is there twice"));
        }
        numbers.push(n);
    }
    Ok(numbers)
}

/// The space-separated words of `name`, `default` when unset; at least one.
pub fn words(name: &str, default: &str) -> Result<Vec<String>, String> {
    let value = value(name).unwrap_or_else(|| default.to_owned());
    let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    match words.is_empty() {
        true => Err(format!("{name} is empty")),
        false => Ok(words),
    }
}

/// `name`'s value, which must be one of `choices`; `default` when unset.
pub fn choice(name: &str, default: &str, choices: &[&str]) -> Result<String, String> {
    let value = value(name).unwrap_or_else(|| default.to_owned());
    match choices.contains(&value.as_str()) {
        true => Ok(value),
        false => Err(format!(
            "{name} must be {}, got '{value}'",
            choices.join(" or ")
        )),
    }
}

/// The file `name` names, made absolute; `None` when unset. Set, it must name a file: a path
/// that is not one (an empty one included) is a message, never the default.
pub fn file(name: &str) -> Result<Option<PathBuf>, String> {
    let Some(path) = std::env::var_os(name) else {
        return Ok(None);
    };
    std::path::absolute(&path)
        .ok()
        .filter(|p| p.is_file())
        .map(Some)
        .ok_or(format!("{name}: {} is not a file", path.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_or_a_message_naming_the_variable() {
        assert_eq!(parse_number("BENCH_ROUNDS", None, 3, 1), Ok(3));
        assert_eq!(parse_number("BENCH_ROUNDS", Some("12"), 3, 1), Ok(12));
        assert_eq!(parse_number("DEMO_STARTUP_RUNS", Some("0"), 10, 0), Ok(0));
        for bad in ["x", "0", "-1", "+2", "1.5", " 2"] {
            assert_eq!(
                parse_number("BENCH_ROUNDS", Some(bad), 3, 1),
                Err(format!(
                    "BENCH_ROUNDS must be a positive integer, got '{bad}'"
                ))
            );
        }
        assert_eq!(
            parse_number("BENCH_CLIENTS", Some("1 16"), 1, 1),
            Err("BENCH_CLIENTS must be a positive integer, got '1 16'".to_owned())
        );
        assert_eq!(
            parse_number("DEMO_STARTUP_RUNS", Some("-1"), 10, 0),
            Err("DEMO_STARTUP_RUNS must be a whole number, got '-1'".to_owned())
        );
    }
}
