//! Colour conversion before readback: a compute pass turns the camera's rendered
//! frame into I420 planes in a storage buffer, and that buffer is what is read back
//! and handed to the encoder. The frame leaves the GPU at 1.5 bytes a pixel instead
//! of 4, there is no full-frame blit to the camera's target, and no CPU conversion.
//!
//! The cameras composite in sRGB space (`CompositingSpace::Srgb`), so the main
//! texture holds the encoded colours the pass reads as they are.
//!
//! The camera renders with `CameraOutputMode::Skip`: its image target only gives the
//! view its size. Bevy keeps the view's main texture for such a camera only when
//! the camera does not clear, so the frame is started here, at the head of the
//! camera's own schedule: a copy of the backdrop (`scene/backdrop.rs`, drawn by a
//! camera ordered before it) when the scene has one, else a clear to the scene's
//! background colour. The conversion reads the main texture right after the
//! cameras ran (`camera_driver`), in the same frame.

use std::sync::atomic::Ordering;

use bevy::camera::ClearColor;
use bevy::core_pipeline::schedule::{Core2d, Core2dSystems, camera_driver};
use bevy::core_pipeline::upscaling::upscaling;
use bevy::prelude::*;
use bevy::render::extract_component::{ExtractComponent, ExtractComponentPlugin};
use bevy::render::extract_resource::{ExtractResource, ExtractResourcePlugin};
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::binding_types::{storage_buffer_sized, texture_2d};
use bevy::render::render_resource::{
    BindGroup, BindGroupEntries, BindGroupLayoutDescriptor, BindGroupLayoutEntries, CachedComputePipelineId,
    ComputePassDescriptor, ComputePipelineDescriptor, LoadOp, Operations, PipelineCache,
    RenderPassColorAttachment, RenderPassDescriptor, ShaderStages, StoreOp, TextureSampleType, TextureViewId,
};
use bevy::render::renderer::{RenderContext, RenderGraph, RenderGraphSystems, ViewQuery};
use bevy::render::storage::{GpuShaderBuffer, ShaderBuffer};
use bevy::render::texture::GpuImage;
use bevy::render::view::ViewTarget;

use crate::scene::backdrop::{Backdrop, BackdropCamera};
use bevy::render::{RenderApp, RenderStartup};
use bevy::shader::Shader;

/// Marks the camera whose frames are converted and read back.
#[derive(Component, ExtractComponent, Clone, Copy, Default)]
pub struct FrameCamera;

/// The storage buffer the I420 planes are written to (and read back from).
#[derive(Resource, ExtractResource, Clone)]
pub struct Planes(pub Handle<ShaderBuffer>);

/// Bytes of one I420 frame: full-size luma, quarter-size Cb and Cr.
pub fn i420_len(width: u32, height: u32) -> usize {
    let (width, height) = (width as usize, height as usize);
    width * height + 2 * (width / 2) * (height / 2)
}

/// Whether a frame of this size can be converted: the pass packs 8×2 pixel blocks
/// into whole words, and 4:2:0 needs even sizes anyway.
pub fn size_is_supported(width: u32, height: u32) -> bool {
    width > 0 && height > 0 && width.is_multiple_of(8) && height.is_multiple_of(2)
}

/// Adds the conversion pass to the render app.
pub struct ConvertPlugin;

#[derive(Resource)]
struct ConvertPipeline {
    layout: BindGroupLayoutDescriptor,
    id: CachedComputePipelineId,
}

#[derive(Resource)]
struct ConvertShader(Handle<Shader>);

impl Plugin for ConvertPlugin {
    fn build(&self, app: &mut App) {
        let shader = app
            .world_mut()
            .resource_mut::<Assets<Shader>>()
            .add(Shader::from_wgsl(include_str!("i420.wgsl"), "sothebais/i420.wgsl"));
        app.add_plugins((
            ExtractComponentPlugin::<FrameCamera>::default(),
            ExtractResourcePlugin::<Planes>::default(),
            ExtractResourcePlugin::<Backdrop>::default(),
            ExtractComponentPlugin::<BackdropCamera>::default(),
        ));
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else { return };
        render_app
            .insert_resource(ConvertShader(shader))
            .add_systems(RenderStartup, init_pipeline)
            .init_resource::<FrameStarted>()
            .add_systems(
                Core2d,
                (start_frame.before(Core2dSystems::MainPass), count_backdrop_draws.after(upscaling)),
            )
            .add_systems(RenderGraph, convert.in_set(RenderGraphSystems::Render).after(camera_driver));
    }
}

fn init_pipeline(mut commands: Commands, shader: Res<ConvertShader>, pipeline_cache: Res<PipelineCache>) {
    let layout = BindGroupLayoutDescriptor::new(
        "sothebais_i420_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::COMPUTE,
            (texture_2d(TextureSampleType::Float { filterable: false }), storage_buffer_sized(false, None)),
        ),
    );
    let id = pipeline_cache.queue_compute_pipeline(ComputePipelineDescriptor {
        label: Some("sothebais_i420".into()),
        layout: vec![layout.clone()],
        immediate_size: 0,
        shader: shader.0.clone(),
        shader_defs: Vec::new(),
        entry_point: Some("convert".into()),
        zero_initialize_workgroup_memory: false,
    });
    commands.insert_resource(ConvertPipeline { layout, id });
}

/// The bind group of the last frame, kept while the texture and buffer stay the same.
#[derive(Default)]
struct Cached(Option<(TextureViewId, bevy::render::render_resource::BufferId, BindGroup)>);

#[allow(clippy::too_many_arguments, reason = "a Bevy system takes what it touches")]
fn convert(
    views: Query<&ViewTarget, With<FrameCamera>>,
    mut started: ResMut<FrameStarted>,
    planes: Option<Res<Planes>>,
    buffers: Res<RenderAssets<GpuShaderBuffer>>,
    pipeline: Option<Res<ConvertPipeline>>,
    pipeline_cache: Res<PipelineCache>,
    mut cached: Local<Cached>,
    mut ctx: RenderContext,
) {
    if !std::mem::take(&mut started.0) {
        return;
    }
    let (Some(planes), Some(pipeline)) = (planes, pipeline) else { return };
    let Some(buffer) = buffers.get(&planes.0) else { return };
    for target in &views {
        let Some(compute) = pipeline_cache.get_compute_pipeline(pipeline.id) else { continue };
        let view = target.main_texture_view();
        let bind_group = match &cached.0 {
            Some((texture, buffer_id, group))
                if *texture == view.id() && *buffer_id == buffer.buffer.id() =>
            {
                group.clone()
            }
            _ => {
                let group = ctx.render_device().create_bind_group(
                    "sothebais_i420",
                    &pipeline_cache.get_bind_group_layout(&pipeline.layout),
                    &BindGroupEntries::sequential((view, buffer.buffer.as_entire_binding())),
                );
                cached.0 = Some((view.id(), buffer.buffer.id(), group.clone()));
                group
            }
        };
        let size = target.main_texture().size();
        let mut pass = ctx.command_encoder().begin_compute_pass(&ComputePassDescriptor {
            label: Some("sothebais_i420"),
            timestamp_writes: None,
        });
        pass.set_pipeline(compute);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups((size.width / 8).div_ceil(8), (size.height / 2).div_ceil(8), 1);
    }
}

/// Counts the backdrop camera's draws (it runs before the frame's camera). A draw
/// counts only when no pipeline was still being made: a pass whose pipeline is not
/// ready is skipped without a word (the sprites', the blit into the image), and on a
/// loaded CPU rasterizer that can last many frames after start-up.
fn count_backdrop_draws(
    _view: ViewQuery<&ViewTarget, With<BackdropCamera>>,
    backdrop: Option<Res<Backdrop>>,
    pipeline_cache: Res<PipelineCache>,
) {
    if let Some(backdrop) = backdrop
        && pipeline_cache.waiting_pipelines().next().is_none()
    {
        backdrop.drawn.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether this frame's main texture was started: until then it holds nothing worth
/// converting, and the planes keep what they held (zeros before the first frame,
/// which the read-back side skips).
#[derive(Resource, Default)]
struct FrameStarted(bool);

/// Starts the frame before the camera draws: a copy of the backdrop, or a clear to
/// the scene's background.
fn start_frame(
    view: ViewQuery<&ViewTarget, With<FrameCamera>>,
    mut started: ResMut<FrameStarted>,
    background: Res<ClearColor>,
    backdrop: Option<Res<Backdrop>>,
    images: Res<RenderAssets<GpuImage>>,
    mut ctx: RenderContext,
) {
    let target = view.into_inner();
    started.0 = true;
    // The backdrop, once its camera has drawn it twice with every pipeline ready.
    let source = backdrop
        .filter(|backdrop| backdrop.used && backdrop.drawn.load(Ordering::Acquire) >= 2)
        .and_then(|backdrop| images.get(&backdrop.image));
    if let Some(source) = source
        && source.texture.size() == target.main_texture().size()
    {
        ctx.command_encoder().copy_texture_to_texture(
            source.texture.as_image_copy(),
            target.main_texture().as_image_copy(),
            source.texture.size(),
        );
        return;
    }
    // The main texture holds sRGB-encoded values (the camera composites in sRGB space).
    let load = LoadOp::Clear(Srgba::from(background.0).into());
    ctx.command_encoder().begin_render_pass(&RenderPassDescriptor {
        label: Some("sothebais_clear"),
        color_attachments: &[Some(RenderPassColorAttachment {
            view: target.main_texture_view(),
            depth_slice: None,
            resolve_target: None,
            ops: Operations { load, store: StoreOp::Store },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    });
}

/// I420 (BT.709, limited range) back to RGBA, for the frame the API serves.
pub fn i420_to_rgba(planes: &[u8], width: u32, height: u32) -> Option<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    if planes.len() < i420_len(width, height) || !size_is_supported(width, height) {
        return None;
    }
    let (luma, chroma) = planes.split_at(w * h);
    let (cb_plane, cr_plane) = chroma.split_at((w / 2) * (h / 2));
    let mut rgba = Vec::with_capacity(w * h * 4);
    for y in 0..h {
        for x in 0..w {
            let c = (y / 2) * (w / 2) + x / 2;
            let luma = (f32::from(luma[y * w + x]) - 16.0) / 219.0;
            let cb = (f32::from(cb_plane[c]) - 128.0) / 224.0;
            let cr = (f32::from(cr_plane[c]) - 128.0) / 224.0;
            let r = luma + 1.5748 * cr;
            let g = luma - 0.1873 * cb - 0.4681 * cr;
            let b = luma + 1.8556 * cb;
            for channel in [r, g, b] {
                rgba.push((channel * 255.0).round().clamp(0.0, 255.0) as u8);
            }
            rgba.push(255);
        }
    }
    Some(rgba)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shader's arithmetic on the CPU, for one colour: (Y, Cb, Cr) bytes.
    fn reference(rgb: [u8; 3]) -> [u8; 3] {
        let [r, g, b] = rgb.map(|channel| f32::from(channel) / 255.0);
        let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let to_byte = |value: f32| (value * 255.0).round() as u8;
        [
            to_byte((16.0 + 219.0 * luma) / 255.0),
            to_byte((128.0 + 224.0 * (b - luma) / 1.8556) / 255.0),
            to_byte((128.0 + 224.0 * (r - luma) / 1.5748) / 255.0),
        ]
    }

    fn solid(rgb: [u8; 3], width: u32, height: u32) -> Vec<u8> {
        let [y, cb, cr] = reference(rgb);
        let (w, h) = (width as usize, height as usize);
        let mut planes = vec![y; w * h];
        planes.extend(std::iter::repeat_n(cb, (w / 2) * (h / 2)));
        planes.extend(std::iter::repeat_n(cr, (w / 2) * (h / 2)));
        planes
    }

    #[test]
    fn sizes_are_counted_in_whole_planes() {
        assert_eq!(i420_len(1280, 720), 1280 * 720 * 3 / 2);
        assert_eq!(i420_len(640, 360), 640 * 360 * 3 / 2);
        assert!(size_is_supported(1920, 1080));
        assert!(!size_is_supported(1284, 720), "not a multiple of 8");
        assert!(!size_is_supported(1280, 721), "odd height");
    }

    #[test]
    fn colours_survive_the_round_trip_within_a_step() {
        for rgb in [[0, 0, 0], [255, 255, 255], [200, 30, 40], [12, 140, 220], [128, 128, 128], [250, 200, 0]]
        {
            let rgba = i420_to_rgba(&solid(rgb, 16, 4), 16, 4).expect("converts");
            for (channel, (got, want)) in rgba[..3].iter().zip(rgb).enumerate() {
                assert!(got.abs_diff(want) <= 2, "{rgb:?} channel {channel}: got {got}, want {want}");
            }
            assert_eq!(rgba[3], 255);
        }
    }

    #[test]
    fn short_or_odd_frames_are_refused() {
        assert!(i420_to_rgba(&[0; 10], 16, 4).is_none());
        assert!(i420_to_rgba(&solid([1, 2, 3], 16, 4), 18, 4).is_none());
    }
}
