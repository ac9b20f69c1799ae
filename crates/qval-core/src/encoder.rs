//! Encoder traits: texts or images in, L2-normalised vectors out. The embedding methods
//! (`qval-methods`) score with any of them; the all-MiniLM-L6-v2 encoder (`qval-encoders`) and
//! the HTTP `/v1/embeddings` encoder (`qval-llm`) implement them.

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::{Image, Result};

/// Texts in, L2-normalised vectors out.
///
/// # Example
/// A toy encoder counting vowels and consonants:
/// ```
/// use qval_core::encoder::TextEncoder;
///
/// struct Letters;
///
/// #[async_trait::async_trait]
/// impl TextEncoder for Letters {
///     fn name(&self) -> String { "letters".into() }
///     async fn encode(&self, texts: &[String]) -> qval_core::Result<Vec<Vec<f32>>> {
///         Ok(texts.iter().map(|t| {
///             let v = t.chars().filter(|c| "aeiou".contains(*c)).count() as f32;
///             let c = t.chars().filter(|c| c.is_alphabetic()).count() as f32 - v;
///             let n = (v * v + c * c).sqrt().max(1e-12);
///             vec![v / n, c / n]
///         }).collect())
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(Letters.encode(&["aa".into()]).await.unwrap()[0], vec![1.0, 0.0]);
/// # });
/// ```
#[async_trait]
pub trait TextEncoder: Send + Sync {
    /// The encoder's name (part of method names).
    fn name(&self) -> String;
    /// One L2-normalised vector per text, in order.
    async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// Images in, L2-normalised vectors out (CLIP, SigLIP and the like plug in here).
///
/// # Example
/// A toy encoder: the share of bright bytes and its complement.
/// ```
/// use qval_core::{Image, encoder::ImageEncoder};
///
/// struct Brightness;
///
/// #[async_trait::async_trait]
/// impl ImageEncoder for Brightness {
///     fn name(&self) -> String { "brightness".into() }
///     async fn encode_images(&self, images: &[Image]) -> qval_core::Result<Vec<Vec<f32>>> {
///         Ok(images.iter().map(|i| {
///             let b = i.data.iter().filter(|x| **x > 127).count() as f32 / i.data.len().max(1) as f32;
///             let n = (b * b + (1.0 - b) * (1.0 - b)).sqrt();
///             vec![b / n, (1.0 - b) / n]
///         }).collect())
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let v = Brightness.encode_images(&[Image::png(vec![255, 255])]).await.unwrap();
/// assert_eq!(v[0], vec![1.0, 0.0]);
/// # });
/// ```
#[async_trait]
pub trait ImageEncoder: Send + Sync {
    /// The encoder's name.
    fn name(&self) -> String;
    /// One L2-normalised vector per image, in order.
    async fn encode_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>>;
}

macro_rules! forward_encoders {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: TextEncoder + ?Sized> TextEncoder for $ty {
            fn name(&self) -> String { (**self).name() }
            async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> { (**self).encode(texts).await }
        }
        #[async_trait]
        impl<T: ImageEncoder + ?Sized> ImageEncoder for $ty {
            fn name(&self) -> String { (**self).name() }
            async fn encode_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
                (**self).encode_images(images).await
            }
        }
    )*};
}
forward_encoders!(Arc<T>, Box<T>, &T);

/// Computes each distinct text, and each distinct image, once per encoder lifetime (a run).
pub struct CachedEncoder<E> {
    inner: E,
    texts: Mutex<HashMap<String, Arc<Vec<f32>>>>,
    images: Mutex<HashMap<Image, Arc<Vec<f32>>>>,
}

impl<E> CachedEncoder<E> {
    /// Caches `inner`.
    pub fn new(inner: E) -> Self {
        CachedEncoder {
            inner,
            texts: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
        }
    }

    /// Distinct texts and images encoded so far.
    pub fn cached(&self) -> usize {
        self.texts.lock().expect("cache lock").len() + self.images.lock().expect("cache lock").len()
    }
}

/// The distinct keys of `items` not yet in `cache`, in first-seen order.
fn missing<K: std::hash::Hash + Eq + Clone>(cache: &Mutex<HashMap<K, Arc<Vec<f32>>>>, items: &[K]) -> Vec<K> {
    let cache = cache.lock().expect("cache lock");
    let mut seen = HashSet::new();
    items
        .iter()
        .filter(|k| !cache.contains_key(*k) && seen.insert(*k))
        .cloned()
        .collect()
}

/// Stores `vecs` for `keys`, then reads every item from the cache.
fn fill<K: std::hash::Hash + Eq>(
    cache: &Mutex<HashMap<K, Arc<Vec<f32>>>>,
    keys: Vec<K>,
    vecs: Vec<Vec<f32>>,
    items: &[K],
) -> Result<Vec<Vec<f32>>> {
    if vecs.len() != keys.len() {
        return Err(crate::CoreError::Method(
            format!("the encoder returned {} vectors for {} inputs", vecs.len(), keys.len()).into(),
        ));
    }
    let mut cache = cache.lock().expect("cache lock");
    for (k, v) in keys.into_iter().zip(vecs) {
        cache.insert(k, Arc::new(v));
    }
    Ok(items.iter().map(|k| cache[k].as_ref().clone()).collect())
}

#[async_trait]
impl<E: TextEncoder> TextEncoder for CachedEncoder<E> {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let keys = missing(&self.texts, texts);
        let vecs = if keys.is_empty() {
            Vec::new()
        } else {
            self.inner.encode(&keys).await?
        };
        fill(&self.texts, keys, vecs, texts)
    }
}

#[async_trait]
impl<E: ImageEncoder> ImageEncoder for CachedEncoder<E> {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn encode_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
        let keys = missing(&self.images, images);
        let vecs = if keys.is_empty() {
            Vec::new()
        } else {
            self.inner.encode_images(&keys).await?
        };
        fill(&self.images, keys, vecs, images)
    }
}

/// Cosine of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);

    #[async_trait]
    impl TextEncoder for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        }
    }

    #[async_trait]
    impl ImageEncoder for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        async fn encode_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
            self.0.fetch_add(images.len(), Ordering::SeqCst);
            Ok(images.iter().map(|i| vec![i.data.len() as f32]).collect())
        }
    }

    #[tokio::test]
    async fn identical_inputs_are_encoded_once() {
        let enc = CachedEncoder::new(Counting(AtomicUsize::new(0)));
        let t = |s: &str| s.to_string();
        let v = enc.encode(&[t("ab"), t("abc"), t("ab")]).await.unwrap();
        assert_eq!(v, vec![vec![2.0], vec![3.0], vec![2.0]]);
        enc.encode(&[t("abc")]).await.unwrap();
        let imgs = [Image::png(vec![1, 2]), Image::png(vec![1, 2]), Image::png(vec![3])];
        let v = enc.encode_images(&imgs).await.unwrap();
        assert_eq!(v, vec![vec![2.0], vec![2.0], vec![1.0]]);
        assert_eq!(enc.inner.0.load(Ordering::SeqCst), 4);
        assert_eq!(enc.cached(), 4);
    }
}
