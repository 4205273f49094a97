//! What resolving `spec.image` comes to: a pinned image, a kept one, or none, and why. Pure.

use super::reference::PinnedImage;
use crate::error::Error;

/// The outcome of turning `spec.image` into a pinned image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageOutcome {
    /// Pinned to a digest.
    Pinned(PinnedImage),
    /// Resolution failed (or found a rejected digest), but a digest is already pinned for this
    /// reference: the workloads keep running it and `ImageResolved` says why nothing moved.
    Kept {
        /// The digest that stays.
        pinned: PinnedImage,
        /// Why it was not replaced.
        problem: Error,
    },
    /// Not pinned; nothing may be deployed with it.
    Unresolved(Error),
}

impl ImageOutcome {
    /// The image to deploy, if any.
    pub fn pinned(&self) -> Option<&PinnedImage> {
        match self {
            Self::Pinned(pinned) | Self::Kept { pinned, .. } => Some(pinned),
            Self::Unresolved(_) => None,
        }
    }

    /// The problem `ImageResolved=False` reports, if any.
    pub fn problem(&self) -> Option<&Error> {
        match self {
            Self::Pinned(_) => None,
            Self::Kept { problem, .. } | Self::Unresolved(problem) => Some(problem),
        }
    }
}
