//! Time and memory of photo-scale recurrence as the data grows: `N` procedural 384-px colour
//! images, generated when read and never stored, streamed through the index. Measure peak memory
//! with `/usr/bin/time -v`:
//!
//! ```sh
//! cargo build --release --example photo_scale
//! /usr/bin/time -v target/release/examples/photo_scale 10000
//! ```

use std::time::Instant;

use poisoncam::detect::recurrence::{ImageRows, RecurrenceConfig};
use poisoncam::{Image, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SIDE: usize = 384;

/// Images that share no content: a smooth random colour field with grain and small shapes,
/// seeded by the row.
struct Procedural {
    count: usize,
}

impl ImageRows for Procedural {
    fn len(&self) -> usize {
        self.count
    }

    fn size(&self, _row: usize) -> [usize; 2] {
        [SIDE, SIDE]
    }

    fn read(&self, row: usize) -> Result<Image> {
        let mut rng = StdRng::seed_from_u64(row as u64);
        let coarse = Image::new(3, 6, 6, (0..108).map(|_| rng.random::<f32>()).collect())?;
        let mut pixels = coarse.resized(SIDE, SIDE).pixels().to_vec();
        for _ in 0..SIDE * SIDE / 300 {
            let (h, w) = (rng.random_range(3..14), rng.random_range(3..14));
            let (y0, x0) = (rng.random_range(0..SIDE - h), rng.random_range(0..SIDE - w));
            let colour: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            for y in y0..y0 + h {
                for x in x0..x0 + w {
                    for (c, v) in colour.iter().enumerate() {
                        pixels[(c * SIDE + y) * SIDE + x] = *v;
                    }
                }
            }
        }
        for v in &mut pixels {
            *v = (*v + rng.random_range(-0.03..0.03f32)).clamp(0.0, 1.0);
        }
        Image::new(3, SIDE, SIDE, pixels)
    }
}

fn main() -> Result<()> {
    let count: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rows = Procedural { count };
    let started = Instant::now();
    let found = RecurrenceConfig::new().find_rows(&rows, &|r| rows.read(r))?;
    let seconds = started.elapsed().as_secs_f64();
    let s = &found.summary;
    println!(
        "images={count} seconds={seconds:.1} images_per_second={:.1} index_entries={} index_bytes={} \
         bytes_per_image={:.0} cores={} verified_images={} patches={}",
        count as f64 / seconds,
        s.index_entries,
        s.index_bytes,
        s.index_bytes as f64 / count as f64,
        s.candidates,
        s.verified_images,
        found.patches.len()
    );
    Ok(())
}
