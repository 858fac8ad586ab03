//! ISO 8601 durations (`P90D`, `PT15M`, `P1W`, `P1DT12H`) for configuration.
//!
//! Years and months are refused: their length depends on the calendar, and an
//! account expiry or a throttle window should mean the same thing every time.

use std::fmt;
use std::time::Duration;

/// A duration written in ISO 8601 form. Deserializes from a string such as `"P90D"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IsoDuration(pub Duration);

/// A string that is not a supported ISO 8601 duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an ISO 8601 duration such as P90D or PT15M: {reason}")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl IsoDuration {
    /// Parses `PnW`, `PnDTnHnMnS` and their parts. Fractions are allowed on seconds.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let fail = |reason| DurationError {
            input: crate::net::truncate(input, 64).to_owned(),
            reason,
        };
        let rest = input
            .strip_prefix('P')
            .ok_or_else(|| fail("must start with `P`"))?;
        if rest.is_empty() {
            return Err(fail("no value after `P`"));
        }
        let mut total = 0f64;
        let mut in_time = false;
        let mut number = String::new();
        let mut seen_unit = false;
        let mut last_rank = 0u8;
        for c in rest.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            if c == 'T' {
                if in_time || !number.is_empty() {
                    return Err(fail("misplaced `T`"));
                }
                in_time = true;
                continue;
            }
            let (seconds, rank) = match (in_time, c) {
                (false, 'Y') | (false, 'M') => {
                    return Err(fail("years and months have no fixed length; use days or weeks"));
                }
                (false, 'W') => (604_800.0, 1),
                (false, 'D') => (86_400.0, 2),
                (true, 'H') => (3_600.0, 3),
                (true, 'M') => (60.0, 4),
                (true, 'S') => (1.0, 5),
                _ => return Err(fail("unknown unit")),
            };
            if rank <= last_rank {
                return Err(fail("units out of order or repeated"));
            }
            last_rank = rank;
            let value: f64 = number.parse().map_err(|_| fail("missing or bad number"))?;
            if number.contains('.') && rank != 5 {
                return Err(fail("fractions are allowed on seconds only"));
            }
            total += value * seconds;
            number.clear();
            seen_unit = true;
        }
        if !number.is_empty() {
            return Err(fail("number without a unit"));
        }
        if !seen_unit {
            return Err(fail("no value"));
        }
        if in_time && last_rank < 3 {
            return Err(fail("`T` without hours, minutes or seconds"));
        }
        if !total.is_finite() || total > 1e12 {
            return Err(fail("too large"));
        }
        Ok(IsoDuration(Duration::from_secs_f64(total)))
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PT{}S", self.0.as_secs())
    }
}

impl std::str::FromStr for IsoDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IsoDuration::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for IsoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IsoDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(deserialize_with = "crate::iso8601::duration")]`: a `Duration` field
/// written as an ISO 8601 duration.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    <IsoDuration as serde::Deserialize>::deserialize(deserializer).map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let secs = |s: &str| IsoDuration::parse(s).unwrap().0.as_secs();
        assert_eq!(secs("P90D"), 90 * 86_400);
        assert_eq!(secs("PT15M"), 900);
        assert_eq!(secs("P1W"), 604_800);
        assert_eq!(secs("P1DT12H"), 129_600);
        assert_eq!(secs("PT1H30M5S"), 5_405);
        assert_eq!(
            IsoDuration::parse("PT0.5S").unwrap().0,
            Duration::from_millis(500)
        );
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "", "P", "90D", "P1Y", "P2M", "PT", "P1H", "PT1D", "P1DT", "PT5M1H", "P1.5D", "PT5", "P-1D",
            "PT1M1M",
        ] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
