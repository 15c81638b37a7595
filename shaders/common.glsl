// Shared by every shader: tensors are reached through buffer device addresses
// passed in push constants (no descriptor sets, no binding-range limits).
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_control_flow_attributes : enable
#ifdef VKD_WIDE_STORES
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif

layout(buffer_reference, std430, buffer_reference_align = 4) buffer FBuf { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer UBuf { uint v[]; };

// Elements e..e+3 of b from a vec4: shaders that read vec4s through texel views write this way.
// On llvmpipe every store is a loop over the lanes, one per component, and a vec4 store is four
// of them (measured no faster than four scalar stores). VKD_WIDE_STORES (the <family>_wide
// variants, chosen on CPU devices with shaderInt64; host: e a multiple of 4, b on 16 bytes)
// writes the quad as two 64-bit stores, two lane loops instead of four: Adam's step at 131072
// parameters went from 4.9-5.9 to 3.9-4.3 ns a parameter (tests/bench_optim).
#ifdef VKD_WIDE_STORES
layout(buffer_reference, std430, buffer_reference_align = 8) buffer DBuf { uint64_t v[]; };
void vkd_store4(FBuf b, uint e, vec4 x) {
    DBuf d = DBuf(uint64_t(b));
    d.v[e >> 1] = packUint2x32(uvec2(floatBitsToUint(x.x), floatBitsToUint(x.y)));
    d.v[(e >> 1) + 1u] = packUint2x32(uvec2(floatBitsToUint(x.z), floatBitsToUint(x.w)));
}
#else
void vkd_store4(FBuf b, uint e, vec4 x) {
    b.v[e] = x.x, b.v[e + 1u] = x.y, b.v[e + 2u] = x.z, b.v[e + 3u] = x.w;
}
#endif

// Storage-buffer outputs (a CPU device, ctx->sbuf; the host's vkd_texel_store bindings):
// VKD_SBUF(k) declares binding 4 + k of set 0 (after the texel bindings) as vec4s, vkd_sbuf<k>.
// On llvmpipe a buffer-address store is a loop over the lanes for each component (two for
// vkd_store4's quad), a vec4 store to a storage buffer one loop for all four: 0.85 against
// 2.8 ns a float on the Intel VM at one thread (src/vk/texel.c).
#define VKD_SBUF(k) layout(set = 0, binding = 4 + k, std430) buffer VkdSbuf##k { vec4 v[]; } vkd_sbuf##k;
// Elements e .. e + 3 (e a multiple of 4) of an op's output b: through storage binding 0 in the
// op's _sb variant (VKD_SBUF_OUT; sfirst, a push constant, where b starts there in vec4s),
// else vkd_store4.
#ifdef VKD_SBUF_OUT
VKD_SBUF(0)
#define VKD_OUT4(b, e, x, sfirst) vkd_sbuf0.v[int((e) >> 2u) + (sfirst)] = (x)
#else
#define VKD_OUT4(b, e, x, sfirst) vkd_store4(b, e, x)
#endif

// vkd_keep(x) is x, computed as a vector before the stores that use it. On llvmpipe a store
// is a loop over the lanes, and LLVM moves a chain of arithmetic that only feeds a store into
// that loop, one lane at a time: Adam's update ran there as scalar divides, with its operand
// vectors spilled to the stack on every lane. A loop whose trip count is a dispatch size (>= 1,
// unknown to the compiler) hides where x comes from, so the chain stays whole vectors. Used
// on the texel paths only (the CPU-device default); a GPU has no lane loop.
#define VKD_KEEP(T)                                                  \
    T vkd_keep(T x) {                                                \
        T r = T(0.0);                                                \
        for (uint i = 0u; i < gl_NumWorkGroups.z; i++) r = x;        \
        return r;                                                    \
    }
VKD_KEEP(float)
VKD_KEEP(vec4)

// Large 1-D launches use a 2-D grid of workgroups (x is limited to 65535 on
// some devices); this is the flat workgroup index.
// Texel operands (src/vk/texel.c): a shader whose TEXEL constant is 1 reads
// operand k through binding k of set 0, from the element the push block names.
// texelFetch is a gather on llvmpipe, a buffer-address load a loop over lanes.
layout(set = 0, binding = 0) uniform textureBuffer vkd_tex0;
layout(set = 0, binding = 1) uniform textureBuffer vkd_tex1;
// fn(i): element i of an operand, through texel binding `tex` (its first element at
// push field `first`) when the shader's TEXEL constant is 1, else through `buf`.
// VKD_LOADER_IF: through the texel binding when `cond` holds (a shader whose views
// may be vec4 views reads single elements through `buf` then).
#define VKD_LOADER_IF(fn, tex, buf, first, cond) \
    float fn(uint i) { return (cond) ? texelFetch(tex, int(i) + (first)).r : (buf).v[i]; }
#define VKD_LOADER(fn, tex, buf, first) VKD_LOADER_IF(fn, tex, buf, first, TEXEL != 0u)

// Row launches: workgroups along x cover one row, the row index comes from
// y and z (so it is the same for the whole workgroup and its divisions are
// scalar, not one per lane).
uint row_group() { return gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y; }

uint flat_group() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
