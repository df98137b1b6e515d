// The rendered frame to I420 (BT.709, limited range) before it leaves the GPU: the
// encoder takes these planes as they are, and the readback carries 1.5 bytes a pixel
// instead of 4. One invocation converts a block 8 pixels wide and 2 high: four luma
// words and one word each of Cb and Cr, so no two invocations write the same word.
//
// planes: Y (width x height), then Cb and Cr (width/2 x height/2 each), bytes packed
// little-endian into u32 words. The width is a multiple of 8 and the height even.

@group(0) @binding(0) var frame: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> planes: array<u32>;

const KR: f32 = 0.2126;
const KB: f32 = 0.0722;
const LUMA: vec3<f32> = vec3<f32>(0.2126, 0.7152, 0.0722);

// The colour as the encoder wants it: gamma-encoded (sRGB transfer) components.
fn encoded(x: i32, y: i32) -> vec3<f32> {
    let colour = textureLoad(frame, vec2<i32>(x, y), 0).rgb;
#ifdef LINEAR_VALUES
    // Linear values (an sRGB texture decodes on load): encode them.
    let low = colour * 12.92;
    let high = 1.055 * pow(colour, vec3<f32>(1.0 / 2.4)) - 0.055;
    return select(high, low, colour <= vec3<f32>(0.0031308));
#else
    return colour;
#endif
}

// Luma in limited range (16..235), as a fraction of 255.
fn luma(colour: vec3<f32>) -> f32 {
    return (16.0 + 219.0 * dot(colour, LUMA)) / 255.0;
}

@compute @workgroup_size(8, 8, 1)
fn convert(@builtin(global_invocation_id) id: vec3<u32>) {
    let size = textureDimensions(frame);
    let width = size.x;
    let height = size.y;
    if (id.x * 8u >= width || id.y * 2u >= height) {
        return;
    }
    let x0 = i32(id.x * 8u);
    let y0 = i32(id.y * 2u);
    var cb = vec4<f32>(0.0);
    var cr = vec4<f32>(0.0);
    for (var row = 0; row < 2; row++) {
        let y = y0 + row;
        for (var word = 0; word < 2; word++) {
            var lumas = vec4<f32>(0.0);
            for (var pair = 0; pair < 2; pair++) {
                let x = x0 + word * 4 + pair * 2;
                let left = encoded(x, y);
                let right = encoded(x + 1, y);
                lumas[pair * 2] = luma(left);
                lumas[pair * 2 + 1] = luma(right);
                // Chroma from the mean of each 2x2 block, summed over both rows.
                let sum = left + right;
                cb[word * 2 + pair] += sum.b - dot(sum, LUMA);
                cr[word * 2 + pair] += sum.r - dot(sum, LUMA);
            }
            let index = (u32(y) * width + u32(x0)) / 4u + u32(word);
            planes[index] = pack4x8unorm(lumas);
        }
    }
    // cb and cr hold four-pixel sums of (B' - Y') and (R' - Y').
    let chroma_width = width / 2u;
    let luma_size = width * height;
    let chroma_size = chroma_width * (height / 2u);
    let chroma = (luma_size + id.y * chroma_width + id.x * 4u) / 4u;
    let scaled_cb = (128.0 + 224.0 * (cb / 4.0) / (2.0 * (1.0 - KB))) / 255.0;
    let scaled_cr = (128.0 + 224.0 * (cr / 4.0) / (2.0 * (1.0 - KR))) / 255.0;
    planes[chroma] = pack4x8unorm(scaled_cb);
    planes[chroma + chroma_size / 4u] = pack4x8unorm(scaled_cr);
}
