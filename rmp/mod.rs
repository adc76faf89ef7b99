// SPDX-License-Identifier: GPL-2.0

//! The Reverse Map Table: platform discovery, the model, and the backends.

// The model is also a host crate with a public API (doctests, fuzzing, host
// tests) and the module uses a part of it that grows from issue to issue, so
// whether these lints fire changes with every user: `allow`, not `expect`.
#[allow(unreachable_pub, dead_code, unused_imports)]
pub(crate) mod model;

// The reference hosts the KUnit suite `snp_host_platform` checks; test data only.
#[cfg(CONFIG_KUNIT = "y")]
#[path = "model/reference.rs"]
#[allow(unreachable_pub)]
mod reference;

pub(crate) mod backend;
pub(crate) mod emulated;
pub(crate) mod hardware;
pub(crate) mod platform;
