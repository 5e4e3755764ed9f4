//! [`Slots`]: a fixed-length array of [`Slot`]s, as container fences hold.

use core::fmt;

use crate::pointer::Pointer;
use crate::reclaimer::{DefaultReclaimer, Reclaimer};
use crate::slot::Slot;

/// A fixed-length array of [`Slot`]s.
///
/// ```
/// use rcu::Slots;
///
/// let slots: Slots<Box<u32>> = (1..=3).map(Box::new).collect();
/// assert_eq!(slots.len(), 3);
/// slots.get(1).unwrap().take();
/// let full = slots.iter().filter(|s| !s.is_empty()).count();
/// assert_eq!(full, 2);
/// ```
pub struct Slots<P: Pointer, R: Reclaimer = DefaultReclaimer> {
    slots: Box<[Slot<P, R>]>,
}

impl<P: Pointer, R: Reclaimer> Slots<P, R> {
    /// Makes one full slot per value.
    pub fn new(values: impl IntoIterator<Item = P>) -> Self {
        Self {
            slots: values.into_iter().map(|v| Slot::new(Some(v))).collect(),
        }
    }

    /// The number of slots (full or empty).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no slots at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The slot at `index`, if in bounds.
    pub fn get(&self, index: usize) -> Option<&Slot<P, R>> {
        self.slots.get(index)
    }

    /// Iterates over the slots.
    pub fn iter(&self) -> core::slice::Iter<'_, Slot<P, R>> {
        self.slots.iter()
    }
}

impl<P: Pointer, R: Reclaimer> FromIterator<P> for Slots<P, R> {
    fn from_iter<I: IntoIterator<Item = P>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl<'a, P: Pointer, R: Reclaimer> IntoIterator for &'a Slots<P, R> {
    type Item = &'a Slot<P, R>;
    type IntoIter = core::slice::Iter<'a, Slot<P, R>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<P: Pointer, R: Reclaimer> fmt::Debug for Slots<P, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.slots.iter()).finish()
    }
}
