// The rendered frame to I420 (BT.709, limited range) before it leaves the GPU: the
// encoder takes these planes as they are, and the readback carries 1.5 bytes a pixel
// instead of 4. One invocation converts a block 8 pixels wide and 2 high: four luma
// words and one word each of Cb and Cr, so no two invocations write the same word.
//
// planes: Y (width x height), then Cb and Cr (width/2 x height/2 each), bytes packed
// little-endian into u32 words. The width is a multiple of 8 and the height even.
//
// Written out without loops or dynamic indexing: on a CPU driver (lavapipe) this
// pass runs on one thread, and straight-line code is what it runs fastest.

@group(0) @binding(0) var frame: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;

const LUMA: vec3<f32> = vec3<f32>(0.2126, 0.7152, 0.0722);
// 224/255 over the BT.709 chroma scales 2(1 - Kb) and 2(1 - Kr).
const CB_SCALE: f32 = 0.473394; // 224 / 255 / 1.8556
const CR_SCALE: f32 = 0.557805; // 224 / 255 / 1.5748

// The colour as the encoder wants it: gamma-encoded (sRGB transfer) components, as
// the main texture holds them (the camera composites in sRGB space).
fn encoded(x: i32, y: i32) -> vec3<f32> {
    return textureLoad(frame, vec2<i32>(x, y), 0).rgb;
}

// Four luma bytes (16..235) in one word.
fn luma_word(a: vec3<f32>, b: vec3<f32>, c: vec3<f32>, d: vec3<f32>) -> u32 {
    let lumas = vec4<f32>(dot(a, LUMA), dot(b, LUMA), dot(c, LUMA), dot(d, LUMA));
    return pack4x8unorm((vec4<f32>(16.0) + 219.0 * lumas) / 255.0);
}

// The sum of a 2x2 block.
fn block(top: vec3<f32>, next: vec3<f32>, below: vec3<f32>, below_next: vec3<f32>) -> vec3<f32> {
    return top + next + below + below_next;
}

@compute @workgroup_size(8, 8, 1)
fn convert(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(frame);
    let width = size.x;
    let height = size.y;
    if (id.x * 8u >= width || id.y * 2u >= height) {
        return;
    }
    let x = i32(id.x * 8u);
    let y = i32(id.y * 2u);
    let t0 = encoded(x, y);
    let t1 = encoded(x + 1, y);
    let t2 = encoded(x + 2, y);
    let t3 = encoded(x + 3, y);
    let t4 = encoded(x + 4, y);
    let t5 = encoded(x + 5, y);
    let t6 = encoded(x + 6, y);
    let t7 = encoded(x + 7, y);
    let b0 = encoded(x, y + 1);
    let b1 = encoded(x + 1, y + 1);
    let b2 = encoded(x + 2, y + 1);
    let b3 = encoded(x + 3, y + 1);
    let b4 = encoded(x + 4, y + 1);
    let b5 = encoded(x + 5, y + 1);
    let b6 = encoded(x + 6, y + 1);
    let b7 = encoded(x + 7, y + 1);

    let top = (u32(y) * width + u32(x)) / 4u;
    let below = top + width / 4u;
    planes[top] = luma_word(t0, t1, t2, t3);
    planes[top + 1u] = luma_word(t4, t5, t6, t7);
    planes[below] = luma_word(b0, b1, b2, b3);
    planes[below + 1u] = luma_word(b4, b5, b6, b7);

    // Chroma from the mean of each 2x2 block.
    let s0 = block(t0, t1, b0, b1) * 0.25;
    let s1 = block(t2, t3, b2, b3) * 0.25;
    let s2 = block(t4, t5, b4, b5) * 0.25;
    let s3 = block(t6, t7, b6, b7) * 0.25;
    let l = vec4<f32>(dot(s0, LUMA), dot(s1, LUMA), dot(s2, LUMA), dot(s3, LUMA));
    let cb = vec4<f32>(128.0 / 255.0) + CB_SCALE * (vec4<f32>(s0.b, s1.b, s2.b, s3.b) - l);
    let cr = vec4<f32>(128.0 / 255.0) + CR_SCALE * (vec4<f32>(s0.r, s1.r, s2.r, s3.r) - l);

    let chroma_width = width / 2u;
    let chroma_size = chroma_width * (height / 2u);
    let chroma = (width * height + id.y * chroma_width + id.x * 4u) / 4u;
    planes[chroma] = pack4x8unorm(cb);
    planes[chroma + chroma_size / 4u] = pack4x8unorm(cr);
}
