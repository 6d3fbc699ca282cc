//! Links the GCC unwinder into the `sluice` binary statically, as
//! `gcc -static-libgcc` does, instead of loading `libgcc_s.so.1`.
//!
//! Why: `sluice deliver` runs once per message when an MTA or a `.forward`
//! pipes mail to it, so its start-up is part of every delivery. Loading
//! `libgcc_s.so.1` runs its constructor, `__cpu_indicator_init`, whose
//! `cpuid` instructions trap to the hypervisor on a virtual machine: a fifth
//! of the process's CPU time per delivery measured here (`perf record` of
//! `benches/peers/deliver.sh`). The static unwinder (`libgcc_eh.a`) has no
//! such constructor; glibc stays dynamic (its NSS modules serve
//! `getpwnam_r`).
//!
//! How: rustc links the unwinder with `-lgcc_s`. A linker script named
//! `libgcc_s.so` in a directory searched before the system's turns that
//! into `libgcc_eh.a` (GNU ld applies every `-L` to every `-l`, wherever it
//! stands). Only the binaries get it (tests keep the shared unwinder), and
//! only when the C compiler has a `libgcc_eh.a` to give (a GNU toolchain,
//! not a `crt-static` or fuzzing build, which link it their own way).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    let fuzzing = env::var_os("CARGO_CFG_FUZZING").is_some();
    if !gnu_linux || static_crt || fuzzing {
        return;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let Some(gcc_eh) = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_absolute() && p.is_file())
    else {
        // No static unwinder (a clang-only system): keep libgcc_s.
        return;
    };
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let dir = out.join("static-unwinder");
    let script = format!("INPUT({})\n", gcc_eh.display());
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("libgcc_s.so"), script).is_err()
    {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
}
