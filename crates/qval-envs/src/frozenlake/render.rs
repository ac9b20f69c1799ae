//! PNG rendering of a FrozenLake state.

use image::{ImageEncoder as _, Rgb, RgbImage};

use super::map::{Grid, Tile};

fn tile_color(t: Tile) -> Rgb<u8> {
    match t {
        Tile::Start => Rgb([170, 210, 240]),
        Tile::Frozen => Rgb([225, 240, 252]),
        Tile::Hole => Rgb([25, 45, 90]),
        Tile::Goal => Rgb([250, 195, 40]),
    }
}

/// Renders the map with the agent at `agent` as a `size` x `size` RGB image: ice in pale
/// blue, the start a little darker, holes dark navy, the goal gold, grid lines grey, the agent
/// a red disc.
pub fn render(grid: &Grid, agent: usize, size: u32) -> RgbImage {
    let (rows, cols) = (grid.rows() as u32, grid.cols() as u32);
    let agent_rc = ((agent as u32) / cols, (agent as u32) % cols);
    let cell_w = size as f64 / cols as f64;
    let cell_h = size as f64 / rows as f64;
    let radius = 0.32 * cell_w.min(cell_h);
    RgbImage::from_fn(size, size, |x, y| {
        let c = ((x as f64 / cell_w) as u32).min(cols - 1);
        let r = ((y as f64 / cell_h) as u32).min(rows - 1);
        let fx = x as f64 - c as f64 * cell_w;
        let fy = y as f64 - r as f64 * cell_h;
        let line = (size / 256).max(1) as f64;
        if fx < line || fy < line {
            return Rgb([120, 130, 140]);
        }
        if (r, c) == agent_rc {
            let dx = fx - cell_w / 2.0;
            let dy = fy - cell_h / 2.0;
            if dx * dx + dy * dy <= radius * radius {
                return Rgb([220, 40, 40]);
            }
        }
        tile_color(grid.tile((r * cols + c) as usize))
    })
}

/// [`render`] encoded as PNG.
pub fn render_png(grid: &Grid, agent: usize, size: u32) -> Vec<u8> {
    let img = render(grid, agent, size);
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), size, size, image::ExtendedColorType::Rgb8)
        .expect("encoding PNG to memory does not fail");
    out
}
