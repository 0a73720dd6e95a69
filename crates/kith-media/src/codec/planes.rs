//! Copying I420 planes between tightly packed frames and codecs' strided buffers.

/// Copies `rows` rows of `width` bytes from `src` (stride `src_stride`) to
/// `dst` (stride `dst_stride`). Returns false when either buffer is too short.
pub(crate) fn copy_plane(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    width: usize,
    rows: usize,
) -> bool {
    if rows == 0 || width == 0 {
        return true;
    }
    let src_needed = (rows - 1) * src_stride + width;
    let dst_needed = (rows - 1) * dst_stride + width;
    if src.len() < src_needed || dst.len() < dst_needed || src_stride < width || dst_stride < width
    {
        return false;
    }
    for row in 0..rows {
        let from = &src[row * src_stride..row * src_stride + width];
        dst[row * dst_stride..row * dst_stride + width].copy_from_slice(from);
    }
    true
}
