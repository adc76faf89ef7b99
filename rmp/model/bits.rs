// SPDX-License-Identifier: GPL-2.0

//! A declarative notation for hardware bit layouts, used by every format in this model.
//!
//! Each layout is written once as a table of `hi:lo name, with_name: Type;` rows (the way
//! nova-core's `register!` reads), and the macro generates the getters and the
//! `with_*` builders. Nothing outside this file shifts or masks: a field that is
//! declared wrongly (reversed, too wide for its type, past bit 63) fails to compile.

/// A type a bit field can be read as and written from.
pub trait Field: Copy {
    /// Number of bits the type can hold.
    const BITS: u32;
    /// Converts the field's bits, already shifted down to bit 0, to the type.
    ///
    /// The value never has more significant bits than [`Field::BITS`] (the layout macro
    /// checks this at compile time), so the conversion never loses bits.
    fn from_bits(bits: u64) -> Self;
    /// Converts the value to field bits, not yet shifted into place.
    fn into_bits(self) -> u64;
}

impl Field for bool {
    const BITS: u32 = 1;

    fn from_bits(bits: u64) -> Self {
        bits != 0
    }

    fn into_bits(self) -> u64 {
        u64::from(self)
    }
}

macro_rules! impl_field_for_uint {
    ($($ty:ty),*) => {
        $(
            impl Field for $ty {
                const BITS: u32 = <$ty>::BITS;

                fn from_bits(bits: u64) -> Self {
                    // The layout macro rejects fields wider than `$ty`, so the
                    // truncation below keeps every bit.
                    bits as $ty
                }

                fn into_bits(self) -> u64 {
                    u64::from(self)
                }
            }
        )*
    };
}

impl_field_for_uint!(u8, u16, u32);

impl Field for u64 {
    const BITS: u32 = u64::BITS;

    fn from_bits(bits: u64) -> Self {
        bits
    }

    fn into_bits(self) -> u64 {
        self
    }
}

/// Returns the mask of bits `hi..=lo` (inclusive on both ends) of a 64-bit word.
///
/// The arguments are literals of the layout tables, checked when the table is compiled.
pub const fn mask(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> (63 - (hi - lo))) << lo
}

/// Declares a 64-bit hardware word and its fields.
///
/// Usable anywhere in the crate (`crate::rmp::model::bits::bitfield`): the same path
/// exists in the module and in the host crate.
///
/// Each row `hi:lo getter, setter: Type;` declares the field spanning bits `hi` down to
/// `lo`, a getter returning it as `Type` and a builder returning a copy of the word
/// with the field replaced (bits of the value beyond the field's width are dropped, so
/// callers check ranges first, through the typed constructors of the model). Bits not
/// covered by any row are kept as they are by every builder: that is how reserved bits
/// survive a read-modify-write. The constructor, the raw value and the builders carry
/// `#[allow(dead_code)]` each: a layout declares them all, and a user of the module needs
/// only some.
macro_rules! bitfield {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fattr:meta])*
                $hi:literal : $lo:literal $get:ident, $set:ident : $fty:ty;
            )*
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
        #[repr(transparent)]
        $vis struct $name(u64);

        // A layout declares every field of the hardware word, and each user reads and
        // builds only some: a constructor, the raw value or a builder that one user of
        // the module has no use for is not dead, hence `allow` on each of those. The
        // getters are all used, by `Debug` below.
        impl $name {
            /// Wraps a raw 64-bit value; every bit pattern is representable.
            #[allow(dead_code, reason = "declared with the layout, used by some of its users")]
            $vis const fn from_raw(raw: u64) -> Self {
                Self(raw)
            }

            /// Returns the raw 64-bit value, reserved bits included.
            #[allow(dead_code, reason = "declared with the layout, used by some of its users")]
            $vis const fn raw(self) -> u64 {
                self.0
            }

            $(
                $(#[$fattr])*
                $vis fn $get(self) -> $fty {
                    const _: () = assert!($hi >= $lo && $hi < 64);
                    const _: () = assert!($hi - $lo < <$fty as $crate::rmp::model::bits::Field>::BITS);
                    <$fty as $crate::rmp::model::bits::Field>::from_bits(
                        (self.0 & $crate::rmp::model::bits::mask($hi, $lo)) >> $lo,
                    )
                }

                #[doc = concat!("Returns a copy with `", stringify!($get), "` (bits ",
                                stringify!($hi), ":", stringify!($lo), ") set to `value`.")]
                #[must_use]
                #[allow(dead_code, reason = "declared with the layout, used by some of its users")]
                $vis fn $set(self, value: $fty) -> Self {
                    let mask = $crate::rmp::model::bits::mask($hi, $lo);
                    let bits = <$fty as $crate::rmp::model::bits::Field>::into_bits(value);
                    Self((self.0 & !mask) | ((bits << $lo) & mask))
                }
            )*
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("raw", &format_args!("{:#018x}", self.0))
                    $(.field(stringify!($get), &self.$get()))*
                    .finish()
            }
        }
    };
}

pub(crate) use bitfield;
