//! What resolving `spec.image` comes to: a pinned image, a kept one, or none, and why. Pure.

use super::reference::PinnedImage;

/// Why the operator could not apply anything this time (a user must act).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// Condition reason.
    pub reason: &'static str,
    /// Human-readable explanation naming the field to fix.
    pub message: String,
}

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
        problem: Blocked,
    },
    /// Not pinned; nothing may be deployed with it.
    Unresolved(Blocked),
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
    pub fn problem(&self) -> Option<&Blocked> {
        match self {
            Self::Pinned(_) => None,
            Self::Kept { problem, .. } | Self::Unresolved(problem) => Some(problem),
        }
    }
}
