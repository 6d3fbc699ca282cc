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
    passwd_entry(|pwd, buf, result| {
        // SAFETY: every pointer is valid for the call: cname is a NUL-ended
        // string, pwd and result live on the caller's frame, buf is writable
        // for buf.len() bytes and outlives every use of the strings it holds.
        unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                result,
            )
        }
    })
}

/// Looks `uid` up with `getpwuid_r(3)`; `Ok(None)` when no entry has it.
pub fn user_by_uid(uid: u32) -> std::io::Result<Option<User>> {
    passwd_entry(|pwd, buf, result| {
        // SAFETY: as in user_by_name: pwd, buf and result are valid and
        // writable for the call.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), result) }
    })
}

/// Runs one reentrant password-database lookup, growing the string buffer
/// on ERANGE.
fn passwd_entry(
    mut call: impl FnMut(&mut libc::passwd, &mut [u8], &mut *mut libc::passwd) -> libc::c_int,
) -> std::io::Result<Option<User>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for this plain C struct
        // (null pointers and zero ids); the lookup fills it in.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut result);
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
        // SAFETY: on success pw_name and pw_dir point to NUL-ended strings
        // inside buf, which lives until the end of this iteration.
        let (name, home) = unsafe { (CStr::from_ptr(pwd.pw_name), CStr::from_ptr(pwd.pw_dir)) };
        return Ok(Some(User {
            name: name.to_string_lossy().into_owned(),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home.to_string_lossy().into_owned()),
        }));
    }
}

/// The gid of group `name` with `getgrnam_r(3)` (NSS: files, LDAP, ...);
/// `Ok(None)` when there is no such group.
pub fn group_id(name: &str) -> std::io::Result<Option<u32>> {
    let Ok(cname) = CString::new(name) else {
        return Ok(None); // a NUL byte: no group can have that name
    };
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero group is a valid value for this plain C
        // struct (null pointers, gid 0); the lookup fills it in.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: cname is a NUL-ended string, grp and result live on this
        // frame, buf is writable for buf.len() bytes; only gr_gid is read.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
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
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// The groups of user `name` (primary `gid`) in the group database
/// (`getgrouplist(3)`): for a caller known by uid only, as on the
/// submission socket, whose supplementary groups the kernel does not say.
pub fn user_groups(name: &str, gid: u32) -> Vec<u32> {
    let Ok(cname) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: cname is NUL-ended; groups is writable for `count`
        // entries, which the call reads and then sets to the number found.
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        // Too small: `count` says how many there are.
        if count <= n || n >= 65536 {
            return vec![gid];
        }
        n = count;
    }
}

/// The listening socket systemd passed under `name`
/// (`FileDescriptorName=`), by sd_listen_fds(3)'s protocol: `LISTEN_PID`
/// is this process, `LISTEN_FDS` sockets from descriptor 3, named in
/// order by `LISTEN_FDNAMES`.
pub fn systemd_socket(name: &str) -> Option<std::os::unix::net::UnixListener> {
    use std::os::fd::FromRawFd;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let count: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let index = names.split(':').position(|n| n == name)? as i32;
    if index >= count {
        return None;
    }
    let fd = 3 + index;
    // Only a listening Unix stream socket is taken.
    let is_unix_listener = rustix::net::sockopt::socket_type(
        // SAFETY: fd is open (systemd passed it); borrowed for the call only.
        unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) },
    )
    .is_ok_and(|t| t == rustix::net::SocketType::STREAM);
    if !is_unix_listener {
        return None;
    }
    // SAFETY: systemd handed this descriptor to this process to own; it is
    // taken once (the name is matched once) and closed by the listener.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
}

/// The groups this process is in: its real gid and its supplementary
/// groups.
pub fn process_groups() -> Vec<u32> {
    let mut groups = vec![rustix::process::getgid().as_raw()];
    if let Ok(more) = rustix::process::getgroups() {
        groups.extend(more.into_iter().map(|g| g.as_raw()));
    }
    groups
}

/// The user who runs this command: the password-database entry of the
/// real uid (who ran it, also under a set-uid wrapper or sudo's preserved
/// environment), never `$USER` or `$LOGNAME`, which any caller can set and
/// which cron and daemons leave unset. `None` when the uid has no entry.
pub fn real_user() -> std::io::Result<Option<spool::Caller>> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    Ok(user_by_uid(uid)?.map(|u| spool::Caller {
        login: u.name,
        uid,
        gid,
    }))
}

/// This process's identity for what it writes on its own behalf (the
/// daemon's messages' `-H` caller line, "removed by LOGIN"): the real
/// user's login, or the uid as text where the database has none. Looked up
/// once.
pub fn process_caller() -> &'static spool::Caller {
    static CALLER: std::sync::OnceLock<spool::Caller> = std::sync::OnceLock::new();
    CALLER.get_or_init(|| match real_user() {
        Ok(Some(c)) => c,
        _ => spool::Caller::from_ids(),
    })
}

/// Whether the process runs as root (and may give files to users).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Every address of every interface (`getifaddrs(3)`); empty if the call
/// fails.
pub fn interface_addresses() -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to the valid pointer given.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet
        // freed; ifa_addr is null or points to a sockaddr of the family it
        // names, so the casts below read the structure that is there.
        unsafe {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Sets the file mode creation mask a command starts with, and marks
/// every descriptor above 2 close-on-exec in it: those Sluice opens are
/// already, but one inherited from whoever started Sluice may not be.
/// (Marked, not closed: the pipe the standard library reports a failed
/// exec through must stay open until the exec.)
pub fn clean_exec(cmd: &mut std::process::Command, mask: u32) {
    use std::os::unix::process::CommandExt;
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only umask(2), close_range(2), sysconf(3) and fcntl(2), which
    // are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                // Kernels before 5.11: one by one, up to the limit.
                let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
                    n if n > 0 => n.min(65_536) as i32,
                    _ => 1024,
                };
                for fd in 3..max {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}
