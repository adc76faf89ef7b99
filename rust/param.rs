// SPDX-License-Identifier: GPL-2.0

//! Module parameters that take one name out of a fixed set (`backend=emulated`).
//!
//! The `module!` macro of Linux 7.3 only knows integer and boolean parameters.
//! [`choice_param!`] registers a parameter with its own `kernel_param_ops`, so
//! that a wrong value fails the load with `EINVAL` and the chosen one shows in
//! `/sys/module/snp_host/parameters/<name>`.

use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{bindings, ffi::c_char, prelude::*};

/// A type whose values a parameter selects by name.
pub(crate) trait Choice: Copy + Send + Sync + 'static {
    /// Every accepted name with its value; the first entry is the default.
    const NAMES: &'static [(&'static str, Self)];
}

/// The storage of a [`choice_param!`]: an index into [`Choice::NAMES`].
pub(crate) struct ChoiceParam<T: Choice> {
    index: AtomicUsize,
    _t: core::marker::PhantomData<T>,
}

impl<T: Choice> ChoiceParam<T> {
    /// Returns a parameter set to the first name of [`Choice::NAMES`].
    pub(crate) const fn new() -> Self {
        Self {
            index: AtomicUsize::new(0),
            _t: core::marker::PhantomData,
        }
    }

    /// Returns the selected value.
    pub(crate) fn get(&self) -> T {
        let names = T::NAMES;
        let i = self.index.load(Ordering::Relaxed);
        // `set` only stores valid indices; fall back to the default all the same.
        match names.get(i).or(names.first()) {
            Some(&(_, value)) => value,
            None => build_error!("a Choice needs at least one name"),
        }
    }

    /// Returns the name of the selected value.
    pub(crate) fn name(&self) -> &'static str {
        T::NAMES
            .get(self.index.load(Ordering::Relaxed))
            .map_or("", |&(name, _)| name)
    }

    /// The `kernel_param_ops` of this parameter type.
    pub(crate) const OPS: bindings::kernel_param_ops = bindings::kernel_param_ops {
        flags: 0,
        set: Some(Self::set),
        get: Some(Self::show),
        free: None,
    };

    /// `kernel_param_ops::set`: selects the value named by `val`.
    ///
    /// # Safety
    ///
    /// `val` is a NUL-terminated string and `kp->arg` points to a `ChoiceParam<T>`, as
    /// [`choice_param!`] arranges.
    unsafe extern "C" fn set(val: *const c_char, kp: *const bindings::kernel_param) -> i32 {
        if val.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: By the function's contract `val` is a valid C string.
        let arg = unsafe { CStr::from_char_ptr(val) }.to_bytes();
        // `echo` leaves a newline; the kernel passes values from the command line without.
        let arg = arg.strip_suffix(b"\n").unwrap_or(arg);
        let Some(i) = T::NAMES.iter().position(|(name, _)| name.as_bytes() == arg) else {
            return EINVAL.to_errno();
        };
        // SAFETY: By the function's contract `kp` is valid and its `arg` is our storage.
        let this = unsafe { &*(*kp).__bindgen_anon_1.arg.cast::<Self>() };
        this.index.store(i, Ordering::Relaxed);
        0
    }

    /// `kernel_param_ops::get`: prints the selected name into the page at `buf`.
    ///
    /// # Safety
    ///
    /// `buf` points to a buffer of `PAGE_SIZE` bytes and `kp->arg` to a `ChoiceParam<T>`.
    unsafe extern "C" fn show(buf: *mut c_char, kp: *const bindings::kernel_param) -> i32 {
        // SAFETY: By the function's contract `kp` is valid and its `arg` is our storage.
        let this = unsafe { &*(*kp).__bindgen_anon_1.arg.cast::<Self>() };
        let name = this.name().as_bytes();
        // Names are short constants; the page holds them and the newline many times over.
        let len = name.len().min(4000);
        // SAFETY: `buf` has room for `PAGE_SIZE` bytes, more than `len + 1`.
        unsafe {
            core::ptr::copy_nonoverlapping(name.as_ptr(), buf.cast::<u8>(), len);
            *buf.add(len) = b'\n';
        }
        // CAST: `len + 1` is at most 4001.
        (len + 1) as i32
    }
}

/// Builds a NUL-terminated `.modinfo` record at compile time.
pub(crate) const fn modinfo<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && i + 1 < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Declares a module parameter `$name` of a [`Choice`] type, readable in sysfs.
///
/// ```ignore
/// choice_param!(BACKEND: Backend, "backend", "auto|hardware|emulated: which RMP to drive");
/// ```
macro_rules! choice_param {
    ($static:ident: $ty:ty, $name:literal, $desc:literal) => {
        pub(crate) static $static: $crate::kernel_ext::param::ChoiceParam<$ty> =
            $crate::kernel_ext::param::ChoiceParam::new();

        const _: () = {
            static OPS: ::kernel::bindings::kernel_param_ops =
                $crate::kernel_ext::param::ChoiceParam::<$ty>::OPS;

            #[link_section = "__param"]
            #[used(compiler)]
            static PARAM: ::kernel::module_param::KernelParam =
                ::kernel::module_param::KernelParam::new(::kernel::bindings::kernel_param {
                    // Built in, the name carries the module's, as C's MODULE_PARAM_PREFIX
                    // does: the command line sets it as `snp_host.<name>=`.
                    name: ::kernel::str::as_char_ptr_in_const_context(
                        match ::core::ffi::CStr::from_bytes_with_nul(
                            if cfg!(MODULE) {
                                concat!($name, "\0")
                            } else {
                                concat!("snp_host.", $name, "\0")
                            }
                            .as_bytes(),
                        ) {
                            Ok(s) => s,
                            Err(_) => panic!("parameter name"),
                        },
                    ),
                    // `__this_module` is set up by the module loader and outlives every
                    // parameter of the module.
                    #[cfg(MODULE)]
                    mod_: (&raw const ::kernel::bindings::__this_module).cast_mut(),
                    // Built in, there is no `struct module` (C's THIS_MODULE is NULL).
                    #[cfg(not(MODULE))]
                    mod_: ::core::ptr::null_mut(),
                    ops: &raw const OPS,
                    perm: 0o444,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: ::kernel::bindings::kernel_param__bindgen_ty_1 {
                        arg: (&raw const $static).cast_mut().cast(),
                    },
                });

            // Built in, modinfo records are prefixed by the module's name too, for
            // modules.builtin.modinfo (C's __MODULE_INFO_PREFIX).
            const PARMTYPE: &str = if cfg!(MODULE) {
                concat!("parmtype=", $name, ":charp\0")
            } else {
                concat!("snp_host.parmtype=", $name, ":charp\0")
            };
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARMTYPE_INFO: [u8; PARMTYPE.len()] =
                $crate::kernel_ext::param::modinfo(PARMTYPE);

            const PARM: &str = if cfg!(MODULE) {
                concat!("parm=", $name, ":", $desc, "\0")
            } else {
                concat!("snp_host.parm=", $name, ":", $desc, "\0")
            };
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARM_INFO: [u8; PARM.len()] = $crate::kernel_ext::param::modinfo(PARM);
        };
    };
}
pub(crate) use choice_param;
