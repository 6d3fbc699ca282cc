//! The binary's system calls: user database lookups and identity.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// A user from the system's password database (NSS: files, LDAP, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks `name` up with `getpwnam_r(3)`; `Ok(None)` when there is no such user.
pub fn user_by_name(name: &str) -> std::io::Result<Option<User>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None); // a NUL byte: no user can have that name
    };
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for this plain C struct
        // (null pointers and zero ids); getpwnam_r fills it in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: cname is a NUL-ended
        // string, pwd and result live on this frame, buf is writable for
        // buf.len() bytes and outlives every use of the strings it holds.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_dir points to a NUL-ended string inside buf.
        let home = unsafe { CStr::from_ptr(pwd.pw_dir) };
        return Ok(Some(User {
            name: name.to_string(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home.to_string_lossy().into_owned()),
        }));
    }
}

/// Whether the process runs as root (and may give files to users).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
