// SPDX-License-Identifier: GPL-2.0

//! AMD SEV-SNP host memory management.
//!
//! This is the crate root of `snp_host.ko` and holds its only `module!`. The
//! rest of the crate lives in the top-level folders of the project:
//! `rmp/` (the Reverse Map Table), `directmap/` (the kernel direct map),
//! `fault/` (RMP page faults) and `rust/` (abstractions over C); the user
//! interface (`/dev/snp_host`, debugfs) lives next to this file.

use kernel::{
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::Arc,
};

mod convert;
mod counters;
mod debugfs;
#[path = "../directmap/mod.rs"]
mod directmap;
#[path = "../fault/mod.rs"]
mod fault;
mod file;
mod hooks;
mod inject;
#[path = "../rust/mod.rs"]
mod kernel_ext;
mod kvm;
mod ledger;
mod owned;
#[path = "../rmp/mod.rs"]
mod rmp;
mod state;
mod uapi;

use core::sync::atomic::Ordering::Relaxed;
use file::FileState;
use kernel_ext::rmp_ops::Registration;
use rmp::{
    backend::{Backend, Request},
    platform::{BackendKind, Platform},
};
use state::Shared;

module! {
    type: SnpHost,
    name: "snp_host",
    authors: ["snp-host developers"],
    description: "AMD SEV-SNP host memory management (RMP, direct map, RMP faults)",
    license: "GPL",
    params: {
        allow_immutable: bool {
            default: false,
            description: "Allow immutable=1 on the hardware RMP (only the firmware can reclaim such a page)",
        },
    },
}

kernel_ext::param::choice_param!(
    DIRECTMAP: directmap::model::Policy,
    "directmap",
    "coalesce|split|perpage: what happens to the direct map around guest pages (split: as Linux 7.3; perpage: each page protected with its own flush and never merged, the cost of the SNP RFC)"
);

kernel_ext::param::choice_param!(
    BACKEND: Request,
    "backend",
    "auto|hardware|emulated: the RMP to drive (auto: the hardware when the host runs SEV-SNP)"
);

/// What the module owns besides its device.
struct State {
    /// Dropped first: no hook runs once it is gone.
    _hooks: Registration<Shared>,
    shared: Arc<Shared>,
    _debugfs: debugfs::Debugfs,
}

/// The loaded module.
#[pin_data(PinnedDrop)]
struct SnpHost {
    // Initialised before the device is registered: `open()` reaches it through
    // `shared_of()` as soon as the device exists.
    state: State,
    #[pin]
    misc: MiscDeviceRegistration<FileState>,
}

fn setup() -> Result<State> {
    let platform = Platform::detect();
    let backend = Backend::new(
        BACKEND.get(),
        &platform,
        module_parameters::allow_immutable.value(),
    )?;
    let forced = if BACKEND.name() == "auto" {
        ""
    } else {
        " (chosen by backend=)"
    };
    pr_info!(
        "using the {} RMP backend: {}{}\n",
        backend.kind().name(),
        rmp::backend::Show(backend.reason()),
        forced
    );
    platform.log_features();
    let hardware = backend.hardware().is_some();
    let shared = Shared::new(platform, backend, DIRECTMAP.get())?;
    // The kernel's fault path and mm hooks call the module from now on; it
    // write-protects the user mappings of guest pages on either backend, which
    // turns kernel writes through them into clean errors on hardware too.
    let hooks = Registration::new(shared.clone(), hardware, true).inspect_err(|e| {
        pr_err!(
            "cannot register with the kernel's RMP hooks ({:?}): EBUSY if another provider is loaded, EINVAL if the backend does not match the host (an emulated RMP on an SNP host)\n",
            e
        )
    })?;
    shared.hooks.store(true, Relaxed);
    let debugfs = debugfs::Debugfs::new(&shared)?;
    // Failure points for tests, next to the emulated RMP only (`inject.rs`).
    if shared.backend.kind() == BackendKind::Emulated {
        if let Err(e) = inject::publish(c"snp_host") {
            pr_warn!(
                "no fault-injection points in debugfs ({:?}); tests that need them skip\n",
                e
            );
        }
    }
    Ok(State {
        _hooks: hooks,
        shared,
        _debugfs: debugfs,
    })
}

impl kernel::InPlaceModule for SnpHost {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            state: setup()?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"snp_host" }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for SnpHost {
    fn drop(self: Pin<&mut Self>) {
        let shared = &self.state.shared;
        let leaked = counters::COUNTERS.leaked_pages.get();
        if leaked > 0 {
            pr_warn!(
                "{} pages stay leaked: the RMP refused to return them, so they never go back to the allocator\n",
                leaked
            );
        }
        pr_info!("unloaded ({} backend)\n", shared.backend.kind().name());
    }
}

/// Returns the shared state of the module that registered `misc`.
fn shared_of(misc: &MiscDeviceRegistration<FileState>) -> Arc<Shared> {
    // SAFETY: The only `MiscDeviceRegistration<FileState>` is the `misc` field of the
    // module's `SnpHost`, so `container_of!` yields that `SnpHost`. Its `state` is
    // initialised before the device is registered and dropped only after `open()` can
    // no longer run (the module is going away, so the file operations' owner cannot be
    // pinned any more), hence it is valid while `misc` is borrowed here.
    let module = unsafe { &*kernel::container_of!(core::ptr::from_ref(misc), SnpHost, misc) };
    module.state.shared.clone()
}
