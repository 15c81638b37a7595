#version 450
#extension GL_EXT_samplerless_texture_functions : require
// ---------------------------------------------------------------------------
// fp32 GEMM / batched GEMM:  C_b = alpha * op(A_b) * op(B_b) [+ bias] [+ C_b] [+ R_b]
//   (flags bit4: C_b = (op(A_b) * op(B_b) [+ bias] [+ C_b] [+ R_b]) * alpha, a 1x1
//   convolution's (conv + bias + res) * scale, see src/ops/conv2d.c)
//
// Specialization constants (host must pass BM, BN and the local size it uses
// to compute the grid  vkCmdDispatch(ceil(N/BN), ceil(M/BM), batch)):
//   constant_id 0  TA  = 0   A(m,k) = A[m*lda+k]  (1: A[k*lda+m])
//   constant_id 1  TB  = 0   B(k,n) = B[k*ldb+n]  (1: B[n*ldb+k])
//   constant_id 2  BM  = 48  rows of C per workgroup          (multiple of TM)
//   constant_id 3  BN  = 64  columns of C per workgroup       (multiple of 8*TN)
//   constant_id 4  WG  = 32  local_size_x (local_size_y = local_size_z = 1);
//                            MUST equal (BM/TM) * (BN/(8*TN)) * 8
//   constant_id 5  TM  = 24  rows of C per 8-lane group       (multiple of 8)
//   constant_id 6  TN  = 4   columns of C per invocation (strided by 8)
// Defaults (BM=48, BN=64, WG=32, TM=24, TN=4) are the fastest found on
// lavapipe (llvmpipe, LLVM 15, AVX2, subgroup size 8).  Suggested starting
// point for real GPUs (subgroup 32/64): TM=8, TN=4, BM=64, BN=64, WG=128
// (fewer accumulators per invocation => better occupancy).
//
// Tiling scheme ("lane group" = 8 consecutive subgroup invocations):
//   * A workgroup owns a BM x BN tile of C; it is split into (BM/TM) x
//     (BN/(8*TN)) blocks of TM x 8*TN, one per lane group.
//   * Lane l of a group owns rows m0..m0+TM-1 and columns n0 + 8*j + l
//     (j < TN): a TM x TN register tile whose columns are interleaved with
//     the other 7 lanes, so for fixed (row, j) the 8 lanes touch 8 adjacent
//     columns of C / B (coalesced, and one 8-wide SIMD vector on lavapipe).
//   * K is walked in chunks of 8.  For each chunk every lane loads ONE value
//     per row: A(m0+i, k0+l) (TA=0) or A(m0+8c+l, k0+kk) (TA=1), i.e. the
//     group holds an 8x8 block of A spread across its lanes.  Inside the chunk
//     the A value needed by all lanes, A(m0+i, k0+kk), is fetched with
//     subgroupShuffle from lane kk of the group (constant index after
//     unrolling).  B(k, n0+8j+l) is loaded directly from global memory.
//   * No shared memory, no barriers, deterministic sequential k order
//     (each C element is summed k = 0..K-1 by one invocation, no atomics).
//
// Why this is fast on lavapipe (Mesa 22.3 / LLVM 15):
//   * Every global (buffer_reference) load is compiled into a scalar loop over
//     the 8 SIMD lanes (~12 x86 instructions per lane, incl. exec-mask test),
//     so a single vector load costs ~100 instructions regardless of the
//     access pattern (vec4 loads are 4 such loops, no gain).  The kernel is
//     therefore designed to minimise the number of load instructions per
//     FMA: per k and lane group it issues TN loads of B and TM/8 loads of A
//     for TM*TN vector FMAs (24x4: 7 loads / 96 FMAs).
//   * subgroupShuffle with a constant lane index is a cheap register permute
//     on llvmpipe of Mesa 22.3 (subgroupBroadcast is ~4x slower there;
//     subgroupBroadcastFirst even crashes LLVM 15 in this pattern; on Mesa 25
//     a shuffle is a loop over the lanes: lanes.glsl, XB), so reusing A through shuffles is
//     much cheaper than re-loading it (uniform-address loads are still
//     8-iteration lane loops).
//   * shared memory on llvmpipe is ordinary memory with the same per-lane
//     load loop and barriers are coroutine switches, so staging tiles in
//     shared memory buys little (measured <= +15% even with free fills).
//   * Small workgroups (32 invocations = 4 lane groups, 2x2) keep the per-workgroup register tile
//     in L1 and give enough workgroups to keep both llvmpipe threads busy;
//     larger TM/TN blow up the unrolled code (>= 32 KiB) and get slower.
//
// Bounds: row / column / k indices are clamped for loads (no divergent
// control flow in the main loop; out-of-range A values for k >= K are
// zeroed) and stores are masked per column (rows past M rewrite row M - 1 with its own
// value, see the epilogue), so any M, N, K >= 1 work.
// Requirements: bufferDeviceAddress, subgroup basic+shuffle in compute
// (Vulkan 1.1 core).  If gl_SubgroupSize is not a multiple of 8, a slower
// shuffle-free path that re-loads A directly is used instead.
// Compile: glslangValidator -V --target-env vulkan1.2 matmul.comp
// ---------------------------------------------------------------------------
#extension GL_EXT_buffer_reference : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_ballot : require
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(buffer_reference, std430, buffer_reference_align = 4) buffer FBuf { float v[]; };
// matmul_wide (VKD_WIDE_STORES; host: CQ, shaderInt64, C's rows and batches in whole quads from
// 16 bytes): a lane's quad of adjacent columns is stored as two 64-bit values, two of
// llvmpipe's per-lane store loops instead of four (see vkd_store4 in common.glsl). The
// epilogue's stores were most of a small GEMM's cost beyond its multiply-adds: 128x128x128
// took ~38 us more than its k's account for on one thread.
#ifdef VKD_WIDE_STORES
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
layout(buffer_reference, std430, buffer_reference_align = 8) buffer DBuf { uint64_t v[]; };
#endif
layout(push_constant) uniform PC {
    FBuf A; FBuf B; FBuf C; FBuf bias;  // device addresses; bias may be invalid when flags bit0 is 0
    uint M, N, K, batch;
    uint lda, ldb, ldc, flags;          // flags: bit0 add bias, bit1 accumulate, bit2 bias indexed by row,
                                        // bit4 alpha after the adds, bit5 softmax's backward (with bit3),
                                        // bit6 softmax over the rows
    uint sA, sB, sC;                    // batch strides in elements; 0 = shared by all batches
    float alpha;
    int a_first, b_first;               // TEXEL: where A and B start in their texel views
    FBuf R;                             // flags bit3: a residual added to the result, indexed as C
    int r_first, c_first;               // EQ: where R and C start in their texel views
    int c_sfirst;                       // matmul_sb: where C starts in its storage binding, in vec4s
} pc;

layout(constant_id = 0) const uint TA = 0;
layout(constant_id = 1) const uint TB = 0;
layout(constant_id = 2) const uint BM = 48;
layout(constant_id = 3) const uint BN = 64;
layout(constant_id = 5) const uint TM = 24;
layout(constant_id = 6) const uint TN = 4;
// constant_id 7  SG = 1: lane groups share A through subgroupShuffle (needs a
// subgroup size that is a multiple of 8); 0: the portable loop. A constant,
// not a test of gl_SubgroupSize, so only one of the two loops is compiled.
layout(constant_id = 7) const uint SG = 1;
// constant_id 8 TEXEL = 1: A and B are read through the texel views of set 0,
// bindings 0 and 1 (on llvmpipe a gather instead of a scalar loop over lanes;
// see src/vk/texel.c).
layout(constant_id = 8) const uint TEXEL = 0;
// constant_id 9 RM, 10 RN: the register block of the multiply-add phase (RM divides TM, RN
// divides TN).
layout(constant_id = 9) const uint RM = 4;
layout(constant_id = 10) const uint RN = 2;
// constant_id 11 FLAGS: pc.flags as a constant. llvmpipe runs the body of an `if` it cannot
// prove dead under a mask, so a runtime flag still ran the accumulate's and the residual's
// per-lane load loops (2 TM TN of them) in every GEMM that had neither.
layout(constant_id = 11) const uint FLAGS = 0;
// constant_id 12 AQ, 13 BQ (TB = 1): A's rows (TA = 0), B's columns read as quads of k through
// vec4 texel views (host: TEXEL, SG, K, the leading dimension and the batch stride multiples
// of 4). On llvmpipe a vec4 fetch costs about what a scalar gather does: a chunk's 8 k's of a
// row of A are 2 fetches among the group (TM/4 a lane instead of TM), a lane's column of B 2
// fetches instead of 8. Quads past K (whole ones, K being a multiple of 4) read the last quad
// of the row and use its k = K - 1, as the scalar walk's clamped index does: the same bits.
// AQ with TA = 1 (host: TEXEL, SG, M, the leading dimension and the batch stride multiples of
// 4; any K): A's columns as quads of 4 rows at one k, TM/4 fetches a lane a chunk instead of TM
// gathers (a weight gradient's dy, whose k is the batch).
// constant_id 14 CQ (host: TEXEL, SG, TN and N multiples of 4): lane l owns the quads of columns
// n0 + 4L*h + 4l .. +3 (h < TN/4) instead of the columns n0 + L*j + l. With TB = 0 (host: ldb
// and sB multiples of 4, B a vec4 view) B's rows are then read as quads of columns, a k's TN
// values of B TN/4 fetches instead of TN gathers; with either TB the epilogue can store a quad
// as two 64-bit values (matmul_wide) and read C and R as quads (EQ). Only which lane holds which
// column changes, not any sum: the same bits.
layout(constant_id = 12) const uint AQ = 0;
layout(constant_id = 13) const uint BQ = 0;
layout(constant_id = 14) const uint CQ = 0;
// constant_id 15 EQ (with CQ; host: C's and R's rows and batches in whole quads from 16 bytes):
// the epilogue reads the accumulate's C and the residual R as quads of a lane's columns through
// the vec4 texel views of bindings 3 and 2, one fetch a quad, instead of a per-lane load loop
// an element (a linear layer with a residual took about twice the time of one without).
layout(constant_id = 15) const uint EQ = 0;
// constant_id 16 XB: the lane groups exchange A by broadcasts instead of shuffles (lanes.glsl;
// host: the driver). The same values, the same bits.
layout(constant_id = 16) const uint XB = 0;
layout(set = 0, binding = 2) uniform textureBuffer texR;
layout(set = 0, binding = 3) uniform textureBuffer texC;
#ifdef VKD_SBUF_OUT
// matmul_sb (CQ, a CPU device): C's quads written, and the accumulate's read, through storage
// binding 0 (src/vk/texel.c: one lane loop a quad instead of two 64-bit stores' two), set 0's
// binding 4 (VKD_SBUF in common.glsl, which this shader does not include).
layout(set = 0, binding = 4, std430) buffer VkdSbuf0 { vec4 v[]; } vkd_sbuf0;
#endif
layout(set = 0, binding = 0) uniform textureBuffer texA;
layout(set = 0, binding = 1) uniform textureBuffer texB;
vec4 ldA4(uint q) { return texelFetch(texA, int(q) + pc.a_first); }  // quad q of A's view
vec4 ldB4(uint q) { return texelFetch(texB, int(q) + pc.b_first); }
float ldA(uint i) { return TEXEL != 0u ? texelFetch(texA, int(i) + pc.a_first).r : pc.A.v[i]; }
float ldB(uint i) { return TEXEL != 0u ? texelFetch(texB, int(i) + pc.b_first).r : pc.B.v[i]; }
// constant_id 4 is the workgroup size (local_size_x, default 32); it is not
// declared as a separate constant to avoid two constants with SpecId 4.
layout(local_size_x = 32, local_size_y = 1, local_size_z = 1) in;
layout(local_size_x_id = 4) in;

const uint L = 8;                 // lane-group width (= subgroup size on lavapipe)
const uint WSN = BN / (L * TN);   // lane groups along N in a workgroup
const uint TMC = (TM + L - 1) / L;  // A loads per k-chunk for TA=1

// flags bit6 (host: a CPU device, sgOK, BN >= N so that one lane group holds whole rows of C):
// softmax over each row after alpha, attention's scores and their softmax in one pass, without
// writing the scores and reading them back (src/ops/attention.c). A row's max and sum are taken
// per lane over its columns in j order, then over the group's 8 lanes in lane order (each lane
// reads the 8 values by grp_lane of constant index, as the k loop's): the same value in every
// lane, and in every replay.
#include "lanes.glsl"
float group_max(float v, uint gbase) {
    float r = grp_lane(v, gbase, 0u);
    [[unroll]] for (uint l = 1u; l < L; l++) r = max(r, grp_lane(v, gbase, l));
    return r;
}
float group_sum(float v, uint gbase) {
    float r = grp_lane(v, gbase, 0u);
    [[unroll]] for (uint l = 1u; l < L; l++) r += grp_lane(v, gbase, l);
    return r;
}

void main() {
    // Lane-group decomposition.  Lanes of a group must live in one subgroup
    // so that subgroupShuffle can exchange A values between them.
    const bool sgOK = SG != 0u;
    uint lane, g;
    if (sgOK) {
        lane = gl_SubgroupInvocationID % L;
        g = gl_SubgroupID * (gl_SubgroupSize / L) + gl_SubgroupInvocationID / L;
    } else {
        lane = gl_LocalInvocationIndex % L;
        g = gl_LocalInvocationIndex / L;
    }
    const uint gbase = gl_SubgroupInvocationID - lane;  // subgroup lane of this group's lane 0

    const uint gm = g / WSN, gn = g % WSN;
    const uint b = gl_WorkGroupID.z;
    const uint m0 = gl_WorkGroupID.y * BM + gm * TM;
    const uint n0 = gl_WorkGroupID.x * BN + gn * (L * TN);
    const uint M = pc.M, N = pc.N, K = pc.K;
    const uint lda = pc.lda, ldb = pc.ldb;
    const uint aoff = b * pc.sA, boff = b * pc.sB;

    // Clamped indices: loads always stay in bounds, results are masked at the store.
    uint ncol[TN], nraw[TN];  // clamped and unclamped
    [[unroll]] for (uint j = 0; j < TN; j++) {
        nraw[j] = CQ != 0u ? n0 + (j / 4u) * 4u * L + 4u * lane + j % 4u : n0 + j * L + lane;
        ncol[j] = min(nraw[j], N - 1u);
    }
    uint arow[TM];     // TA=0 / fallback: row of A for register row i (uniform across lanes)
    [[unroll]] for (uint i = 0; i < TM; i++) arow[i] = min(m0 + i, M - 1u);
    uint arowT[TMC];   // TA=1: lane l holds row m0 + 8c + l
    [[unroll]] for (uint c = 0; c < TMC; c++) arowT[c] = min(m0 + c * L + lane, M - 1u);

    float acc[TM][TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = 0.0;

    if (sgOK) {
        for (uint k0 = 0; k0 < K; k0 += L) {
            // 8x8 block of A spread over the lane group (zero beyond K).
            float av[TM];        // TA=0: lane l holds A(m0+i, k0+l)
            float avT[L][TMC];   // TA=1: lane l holds A(m0+8c+l, k0+kk)
            // AQ: the chunk's TM x 8 block of A is 2*TM quads; lane l holds quads p = 8u + l,
            // u < NQA (row p / 2, k0 + 4 (p % 2)), zero past K.
            // AQ with TA = 1: lane l holds the TM/4 quads of rows m0 + 4u .. 4u + 3 at k0 + l
            // (M a multiple of 4; a quad past M reads rows M-4 .. M-1 and uses row M - 1, as the
            // scalar walk's clamped rows do; zero past K).
            const uint NQA = TA != 0u ? TM / 4u : (2u * TM + L - 1u) / L;
            vec4 aq[AQ != 0u ? NQA : 1u];
            if (AQ != 0u && TA != 0u) {
                const uint ka = min(k0 + lane, K - 1u);
                const bool kin = k0 + lane < K;
                [[unroll]] for (uint u = 0; u < NQA; u++) {
                    const uint row = m0 + 4u * u;
                    const vec4 x = ldA4((aoff + ka * lda + min(row, M - 4u)) / 4u);
                    aq[u] = !kin ? vec4(0.0) : row < M ? x : vec4(x.w);
                }
            } else if (AQ != 0u) {
                [[unroll]] for (uint u = 0; u < NQA; u++) {
                    const uint p = u * L + lane, kq = k0 + 4u * (p % 2u);
                    const uint row = min(m0 + p / 2u, M - 1u);
                    const vec4 x = ldA4((aoff + row * lda + min(kq, K - 4u)) / 4u);
                    aq[u] = kq < K ? x : vec4(0.0);
                }
            } else if (TA == 0) {
                const uint ka = min(k0 + lane, K - 1u);
                const bool kin = (k0 + lane) < K;
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    float x = ldA(aoff + arow[i] * lda + ka);
                    av[i] = kin ? x : 0.0;
                }
            } else {
                [[unroll]] for (uint kk = 0; kk < L; kk++) {
                    const uint ka = min(k0 + kk, K - 1u);
                    const bool kin = (k0 + kk) < K;
                    [[unroll]] for (uint c = 0; c < TMC; c++) {
                        float x = ldA(aoff + ka * lda + arowT[c]);
                        avT[kk][c] = kin ? x : 0.0;
                    }
                }
            }
            // Two phases, as in conv2d.comp: first every operand of the chunk (the texel
            // gathers are calls on llvmpipe, which clobber the vector registers), then the
            // multiply-adds in RM x RN register blocks, each walking the chunk's k's. Each
            // accumulator still sums k in order: the same bits as one k at a time.
            float ak[L][TM], bk[L][TN];
            if (BQ != 0u) {  // column j's k0 .. k0+7: quads h = 0, 1 (past K: the row's last k)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    [[unroll]] for (uint h = 0; h < L / 4u; h++) {
                        const vec4 x = ldB4((boff + ncol[j] * ldb + min(k0 + 4u * h, K - 4u)) / 4u);
                        const bool kin = k0 + 4u * h < K;
                        [[unroll]] for (uint c = 0; c < 4u; c++) bk[4u * h + c][j] = kin ? x[c] : x.w;
                    }
            }
            [[unroll]] for (uint kk = 0; kk < L; kk++) {
                const uint k = min(k0 + kk, K - 1u);   // A is zero for k >= K
                // CQ: quad h of row k (a quad past N reads the row's last; its columns are not stored)
                [[unroll]] for (uint h = 0; h < (CQ != 0u && TB == 0u ? TN / 4u : 0u); h++) {
                    const vec4 x = ldB4((boff + k * ldb + min(n0 + 4u * (h * L + lane), N - 4u)) / 4u);
                    [[unroll]] for (uint c = 0; c < 4u; c++) bk[kk][4u * h + c] = x[c];
                }
                [[unroll]] for (uint j = 0; j < TN && BQ == 0u && (CQ == 0u || TB != 0u); j++)
                    bk[kk][j] = (TB == 0) ? ldB(boff + k * ldb + ncol[j])
                                          : ldB(boff + ncol[j] * ldb + k);
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    const uint p = 2u * i + kk / 4u;  // AQ: the quad holding A(m0+i, k0+kk)
                    ak[kk][i] = AQ != 0u && TA != 0u ? grp_lane(aq[i / 4u][i % 4u], gbase, kk)
                              : AQ != 0u  ? grp_lane(aq[p / L][kk % 4u], gbase, p % L)
                              : (TA == 0) ? grp_lane(av[i], gbase, kk)
                                          : grp_lane(avT[kk][i / L], gbase, i % L);
                }
            }
            [[unroll]] for (uint ib = 0; ib < TM / RM; ib++)
                [[unroll]] for (uint jb = 0; jb < TN / RN; jb++)
                    [[unroll]] for (uint kk = 0; kk < L; kk++)
                        [[unroll]] for (uint i = 0; i < RM; i++)
                            [[unroll]] for (uint j = 0; j < RN; j++)
                                acc[ib * RM + i][jb * RN + j] =
                                    fma(ak[kk][ib * RM + i], bk[kk][jb * RN + j], acc[ib * RM + i][jb * RN + j]);
        }
    } else {
        // Portable fallback (subgroup size not a multiple of 8): load A directly.
        for (uint k = 0; k < K; k++) {
            float bv[TN];
            [[unroll]] for (uint j = 0; j < TN; j++)
                bv[j] = (TB == 0) ? ldB(boff + k * ldb + ncol[j])
                                  : ldB(boff + ncol[j] * ldb + k);
            [[unroll]] for (uint i = 0; i < TM; i++) {
                const float a = (TA == 0) ? ldA(aoff + arow[i] * lda + k)
                                          : ldA(aoff + k * lda + arow[i]);
                [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] = fma(a, bv[j], acc[i][j]);
            }
        }
    }

    // Epilogue: alpha, optional bias (per column or per row), optional accumulate and
    // residual, in that order (flags bit4: alpha last). Each flag is tested once for the whole register tile, and
    // the bounds once per column: rows past M read and write row M - 1 instead, whose
    // values they equal (their A rows, bias and C / R loads were all clamped to it), so
    // the invocation only writes row M - 1's own result there again (all loads come
    // before the first store, so an accumulate reads the old C). Why: a test per element
    // put hundreds of branches into the unrolled tile; without them lavapipe creates the
    // pipeline ~10% faster (NIR's optimizer, run for every pipeline) and runs the GMM's
    // small GEMMs ~10% faster (fewer execution-mask updates).
    if (m0 >= M) return;  // a lane group wholly below C: nothing of its own to write
    const uint coff = b * pc.sC;
    const uint ldc = pc.ldc, flags = FLAGS;
    uint crow[TM];
    [[unroll]] for (uint i = 0; i < TM; i++) crow[i] = coff + arow[i] * ldc;
    const bool alpha_last = (flags & 16u) != 0u;
    [[unroll]] for (uint i = 0; i < TM && !alpha_last; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] *= pc.alpha;
    if ((flags & 64u) != 0u) {  // softmax over the rows (columns past N take no part)
        [[unroll]] for (uint i = 0; i < TM; i++) {
            float m = -3.4028235e38;
            [[unroll]] for (uint j = 0; j < TN; j++) m = max(m, nraw[j] < N ? acc[i][j] : -3.4028235e38);
            m = group_max(m, gbase);
            float s = 0.0;
            [[unroll]] for (uint j = 0; j < TN; j++) {
                acc[i][j] = nraw[j] < N ? exp(acc[i][j] - m) : 0.0;
                s += acc[i][j];
            }
            const float inv = 1.0 / group_sum(s, gbase);
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] *= inv;
        }
    }
    if ((flags & 5u) == 1u) {  // bias per column, loaded once per column of the tile
        [[unroll]] for (uint j = 0; j < TN; j++) {
            const float bj = pc.bias.v[ncol[j]];
            [[unroll]] for (uint i = 0; i < TM; i++) acc[i][j] += bj;
        }
    }
    if ((flags & 5u) == 5u) {  // bias per row
        [[unroll]] for (uint i = 0; i < TM; i++) {
            const float bi = pc.bias.v[arow[i]];
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += bi;
        }
    }
    if ((flags & 2u) != 0u && EQ != 0u) {
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint h = 0; h < TN / 4u; h++) {
#ifdef VKD_SBUF_OUT
                const vec4 c = vkd_sbuf0.v[int((crow[i] + ncol[4u * h]) / 4u) + pc.c_sfirst];
#else
                const vec4 c = texelFetch(texC, int((crow[i] + ncol[4u * h]) / 4u) + pc.c_first);
#endif
                [[unroll]] for (uint e = 0; e < 4u; e++) acc[i][4u * h + e] += c[e];
            }
    } else if ((flags & 2u) != 0u) {
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] += pc.C.v[crow[i] + ncol[j]];
    }
    // bit3: + R. With bit5, softmax's backward instead: C = R * (C - bias[b M + m]), R the softmax's
    // output p and bias its rows' sums of dp * p (the caller's D), so ds comes out of dp's GEMM
    // without a pass of its own. (FLAGS is a constant: each form compiles alone.)
    const bool smb = (flags & 32u) != 0u;
    if ((flags & 8u) != 0u) {
        [[unroll]] for (uint i = 0; i < TM; i++) {
            const float d = smb ? pc.bias.v[b * pc.M + arow[i]] : 0.0;
            [[unroll]] for (uint h = 0; h < (EQ != 0u ? TN / 4u : 0u); h++) {
                const vec4 r = texelFetch(texR, int((crow[i] + ncol[4u * h]) / 4u) + pc.r_first);
                [[unroll]] for (uint e = 0; e < 4u; e++) {
                    const uint j = 4u * h + e;
                    acc[i][j] = smb ? r[e] * (acc[i][j] - d) : acc[i][j] + r[e];
                }
            }
            [[unroll]] for (uint j = 0; j < (EQ != 0u ? 0u : TN); j++) {
                const float r = pc.R.v[crow[i] + ncol[j]];
                acc[i][j] = smb ? r * (acc[i][j] - d) : acc[i][j] + r;
            }
        }
    }
    [[unroll]] for (uint i = 0; i < TM && alpha_last; i++)
        [[unroll]] for (uint j = 0; j < TN; j++) acc[i][j] *= pc.alpha;
#ifdef VKD_WIDE_STORES
    if (CQ != 0u) {
        DBuf d = DBuf(uint64_t(pc.C));
        [[unroll]] for (uint h = 0; h < TN / 4u; h++) {
            if (nraw[4u * h] < N) {  // N is whole quads
                [[unroll]] for (uint i = 0; i < TM; i++) {
#ifdef VKD_SBUF_OUT
                    vkd_sbuf0.v[int((crow[i] + nraw[4u * h]) / 4u) + pc.c_sfirst] =
                        vec4(acc[i][4u * h], acc[i][4u * h + 1u], acc[i][4u * h + 2u], acc[i][4u * h + 3u]);
#else
                    const uint e = (crow[i] + nraw[4u * h]) >> 1;
                    d.v[e] = packUint2x32(uvec2(floatBitsToUint(acc[i][4u * h]), floatBitsToUint(acc[i][4u * h + 1u])));
                    d.v[e + 1u] =
                        packUint2x32(uvec2(floatBitsToUint(acc[i][4u * h + 2u]), floatBitsToUint(acc[i][4u * h + 3u])));
#endif
                }
            }
        }
        return;
    }
#endif
    [[unroll]] for (uint j = 0; j < TN; j++) {
        if (nraw[j] < N) {
            [[unroll]] for (uint i = 0; i < TM; i++) pc.C.v[crow[i] + ncol[j]] = acc[i][j];
        }
    }
}
