//! Range checks shared by every config's `check()`, each failing with
//! [`Error::InvalidSetting`] naming the setting.

use crate::error::{Error, Result};

pub(crate) fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> Error {
    Error::InvalidSetting { name, value: value.to_string(), expected }
}

/// A finite value above zero.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(name, value, "finite and above 0"))
    }
}

/// A finite value in `[0, 1]`.
pub(crate) fn share(name: &'static str, value: f64) -> Result<()> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(name, value, "between 0 and 1"))
    }
}

/// A finite value in `(0, 1]`: a share that must not be empty.
pub(crate) fn fraction(name: &'static str, value: f64) -> Result<()> {
    if value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(invalid(name, value, "above 0 and at most 1"))
    }
}

/// A finite value at or above zero.
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(name, value, "finite and at least 0"))
    }
}

/// A count of at least `min`.
pub(crate) fn at_least(name: &'static str, value: usize, min: usize, expected: &'static str) -> Result<()> {
    if value >= min {
        Ok(())
    } else {
        Err(invalid(name, value, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinity_and_out_of_range_values_are_named() {
        assert!(positive("a", 0.5).is_ok());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(positive("a", bad), Err(Error::InvalidSetting { name: "a", .. })), "{bad}");
        }
        assert!(share("s", 1.0).is_ok() && share("s", 0.0).is_ok());
        assert!(share("s", f64::NAN).is_err() && share("s", 1.5).is_err() && share("s", -0.1).is_err());
        assert!(fraction("f", 1.0).is_ok() && fraction("f", 0.01).is_ok());
        assert!(fraction("f", 0.0).is_err() && fraction("f", f64::NAN).is_err() && fraction("f", 1.01).is_err());
        assert!(non_negative("n", 0.0).is_ok() && non_negative("n", -0.0).is_ok());
        assert!(non_negative("n", f64::NAN).is_err() && non_negative("n", -2.0).is_err());
        assert!(at_least("k", 1, 1, "1 or more").is_ok());
        let err = at_least("k", 0, 1, "1 or more").unwrap_err().to_string();
        assert_eq!(err, "invalid setting k = 0: must be 1 or more");
    }
}
