//! Closed vocabularies: enums whose every variant has one name on the wire, in the policy
//! file, in the database and in the audit log (tiers, statuses, verdicts, roles...). One
//! macro writes each table once: `as_str`, `ALL`, `NAMES`, `Display` and a `FromStr` whose
//! error lists every name, so that no two copies of a name list can drift apart.

use std::fmt;

/// A name that is not one of a vocabulary's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    /// Every name of the vocabulary.
    pub expected: &'static [&'static str],
    pub found: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected one of ")?;
        for (i, name) in self.expected.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name:?}")?;
        }
        write!(f, ", found {:?}", self.found)
    }
}

impl std::error::Error for UnknownName {}

/// Defines a closed vocabulary:
///
/// ```
/// countersign_core::vocabulary! {
///     /// Whether a light is on.
///     pub enum Light { On = "on", Off = "off" }
/// }
/// assert_eq!("on".parse::<Light>(), Ok(Light::On));
/// assert_eq!(Light::Off.to_string(), "off");
/// assert_eq!(
///     "dim".parse::<Light>().unwrap_err().to_string(),
///     r#"expected one of "on", "off", found "dim""#
/// );
/// ```
#[macro_export]
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The variant's one name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::vocabulary::UnknownName;
            fn from_str(text: &str) -> ::std::result::Result<Self, Self::Err> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::vocabulary::UnknownName {
                        expected: $name::NAMES,
                        found: text.to_owned(),
                    }),
                }
            }
        }
    };
}
