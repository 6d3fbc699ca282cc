//! `sluice deliver --mbox`: appending to an mbox under the configured locks.

use std::io::Read;
use std::path::Path;

use mailstore::error::sysexits;

use crate::cmd::deliver::Failure;
use crate::config::Config;

/// Appends the message to the mbox at `path`.
pub fn append(
    _cfg: &Config,
    path: &Path,
    _owner: Option<(u32, u32)>,
    _sender: Option<&str>,
    _prefix: &[u8],
    _input: &mut dyn Read,
) -> Result<(), Failure> {
    Err(Failure {
        code: sysexits::TEMPFAIL,
        message: format!(
            "{}: mbox delivery is not available in this build",
            path.display()
        ),
    })
}
