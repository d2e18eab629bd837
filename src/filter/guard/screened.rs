//! `iter.screen(&guard)`: the guard as an iterator adapter.

use burn::tensor::backend::Backend;

use super::Guard;
use crate::image::AsImage;

/// `iter.screen(&guard)`: yields the samples the guard keeps; the others are recorded in the
/// guard ([`Guard::removals`]).
pub trait ScreenExt: Iterator + Sized
where
    Self::Item: AsImage,
{
    /// Screens every item of this iterator, lazily.
    fn screen<B: Backend>(self, guard: &Guard<B>) -> Screened<'_, Self, B> {
        Screened { inner: self, guard }
    }
}

impl<T: Iterator> ScreenExt for T where T::Item: AsImage {}

/// The iterator returned by [`ScreenExt::screen`].
pub struct Screened<'g, T, B: Backend> {
    inner: T,
    guard: &'g Guard<B>,
}

impl<T: Iterator, B: Backend> Iterator for Screened<'_, T, B>
where
    T::Item: AsImage,
{
    type Item = T::Item;

    fn next(&mut self) -> Option<T::Item> {
        for item in self.inner.by_ref() {
            if !self.guard.screen(&item).removed {
                return Some(item);
            }
        }
        None
    }
}
