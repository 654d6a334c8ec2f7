//! Declaring parameters once: [`params!`](crate::params!) makes a scenario's parameter
//! struct, its `Default` and its specs from one line per parameter;
//! [`named_enum!`](crate::named_enum!) makes a choice parameter's type, whose names are
//! written once and serve `--set`, suite files, serde and `socklab list` alike.
//!
//! s2n-netbench's `config!` is the model: a parameter is its doc, name, type, default,
//! range and unit in one place, and nothing else repeats any of them.

use super::{ParamKind, ParamSpec};

/// A parameter struct made by [`params!`](crate::params!): one spec per field, in field
/// order, with the same names.
pub trait ParamSet {
    /// The specs, one per field.
    const SPECS: &'static [ParamSpec];
}

/// A type whose values are a fixed set of names (made by
/// [`named_enum!`](crate::named_enum!)): a choice parameter's type.
pub trait Named: Copy + 'static {
    /// Every name, in documentation order.
    const NAMES: &'static [&'static str];
}

impl ParamSpec {
    /// `true` or `false`.
    pub const fn bool() -> ParamSpec {
        ParamSpec::of(ParamKind::Bool)
    }

    /// A whole number in `min..=max`.
    pub const fn int(min: u64, max: u64) -> ParamSpec {
        ParamSpec::of(ParamKind::Integer { min, max })
    }

    /// One of the names of `E`.
    pub const fn choice<E: Named>() -> ParamSpec {
        ParamSpec::of(ParamKind::Choice { options: E::NAMES })
    }

    /// One of `options` (for a `String` field whose words no enum holds).
    pub const fn one_of(options: &'static [&'static str]) -> ParamSpec {
        ParamSpec::of(ParamKind::Choice { options })
    }

    /// Free text the scenario's `validate` checks; `expected` says what it must be.
    pub const fn text(expected: &'static str) -> ParamSpec {
        ParamSpec::of(ParamKind::Text { expected })
    }

    /// A list of `min_items..=max_items` strings.
    pub const fn list(min_items: usize, max_items: usize) -> ParamSpec {
        ParamSpec::of(ParamKind::StringList { min_items, max_items })
    }

    const fn of(kind: ParamKind) -> ParamSpec {
        ParamSpec { name: "", kind, unit: None, doc: "" }
    }

    /// The same, with its unit (`bytes`, `ms`).
    pub const fn unit(self, unit: &'static str) -> ParamSpec {
        ParamSpec { unit: Some(unit), ..self }
    }

    /// The same, with what it does in one line.
    pub const fn doc(self, doc: &'static str) -> ParamSpec {
        ParamSpec { doc, ..self }
    }

    /// The spec of field `name`, documented by `doc` (the field's doc comment) unless that
    /// is empty, when the spec keeps its own doc (a shared parameter's).
    #[doc(hidden)]
    pub const fn declared(self, name: &'static str, doc: &'static str) -> ParamSpec {
        let doc = socklab_model::metric::doc_line(doc);
        ParamSpec { name, doc: if doc.is_empty() { self.doc } else { doc }, ..self }
    }
}

/// Declares a scenario's parameters once each: the struct (serde, `default`,
/// `deny_unknown_fields`), its `Default`, and its specs ([`ParamSet::SPECS`]).
///
/// One line per parameter: its doc comment (what `socklab list` shows), name, type,
/// default, then `=>` and its spec (type, range, unit). A shared parameter takes the
/// harness's spec (`=> shared::LINK`), and its type's `Default` when no `= default` is
/// written; a doc comment on the line replaces the shared doc.
///
/// ```
/// use socklab_harness::params::{ParamSet, ParamSpec};
///
/// socklab_harness::named_enum!(
///     /// How the client writes.
///     pub Pattern, "pattern", {
///         /// One write per message.
///         Each => "each",
///         /// Everything in one write.
///         Merged => "merged",
///     }
/// );
///
/// socklab_harness::params! {
///     /// Parameters of an example scenario.
///     pub struct Params {
///         /// Bytes per read.
///         read_size: u64 = 5 => ParamSpec::int(1, 1 << 20).unit("bytes"),
///         /// TCP_NODELAY on the client.
///         nodelay: bool = false => ParamSpec::bool(),
///         /// How the client writes.
///         pattern: Pattern = Pattern::Each => ParamSpec::choice::<Pattern>(),
///     }
/// }
///
/// let params = Params::default();
/// assert_eq!((params.read_size, params.pattern), (5, Pattern::Each));
/// assert_eq!(Params::SPECS[0].name, "read_size");
/// assert_eq!(Params::SPECS[0].doc, "Bytes per read.");
/// assert_eq!(Params::SPECS[2].kind.describe(), "one of each, merged");
/// let parsed: Params = serde_json::from_str(r#"{"pattern": "merged"}"#).unwrap();
/// assert_eq!(parsed.pattern, Pattern::Merged);
/// ```
#[macro_export]
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $default:expr)? => $spec:expr
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        $vis struct $name {
            $(
                #[doc = $crate::__param_doc!($($doc),*)]
                pub $field: $ty,
            )+
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                $name { $($field: $crate::__param_default!($($default)?)),+ }
            }
        }

        impl $crate::params::ParamSet for $name {
            const SPECS: &'static [$crate::params::ParamSpec] = &[
                $($crate::params::ParamSpec::declared($spec, stringify!($field), concat!("", $($doc),*))),+
            ];
        }
    };
}

/// The doc of a [`params!`](crate::params!) field: its doc comment, or, for a shared
/// parameter without one, where its doc is.
#[doc(hidden)]
#[macro_export]
macro_rules! __param_doc {
    () => {
        "A shared parameter; its doc is its spec's (`socklab list` shows it)."
    };
    ($($doc:literal),+) => {
        concat!($($doc),+)
    };
}

/// The default of a [`params!`](crate::params!) field: the one written, or the type's.
#[doc(hidden)]
#[macro_export]
macro_rules! __param_default {
    () => {
        ::std::default::Default::default()
    };
    ($default:expr) => {
        $default
    };
}

/// An enum whose variants each have one name: `ALL`, `NAMES`, `name()`, `Display`,
/// `FromStr` (an unknown name lists the valid ones), serde as the name, and [`Named`],
/// so it can be a choice parameter ([`ParamSpec::choice`]). The first variant is the
/// `Default`.
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis $name:ident, $what:literal, {
            $(#[$first_meta:meta])* $first:ident => $first_text:literal
            $(, $(#[$vmeta:meta])* $variant:ident => $text:literal)* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        $vis enum $name {
            $(#[$first_meta])*
            #[default]
            $first,
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            /// Every value, in documentation order.
            pub const ALL: &'static [$name] = &[$name::$first, $($name::$variant),*];
            /// Every name, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$first_text, $($text),*];

            /// The name as written on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $name::$first => $first_text,
                    $($name::$variant => $text),*
                }
            }
        }

        impl $crate::params::Named for $name {
            const NAMES: &'static [&'static str] = $name::NAMES;
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::params::UnknownName;

            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::params::UnknownName> {
                $name::ALL.iter().copied().find(|v| v.name() == s).ok_or_else(|| $crate::params::UnknownName {
                    what: $what,
                    input: s.to_string(),
                    valid: $name::NAMES.to_vec(),
                })
            }
        }

        impl $crate::__private::serde::Serialize for $name {
            fn serialize<S: $crate::__private::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> $crate::__private::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__private::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::string::String as $crate::__private::serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                text.parse().map_err($crate::__private::serde::de::Error::custom)
            }
        }
    };
}
