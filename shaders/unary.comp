#version 450
#extension GL_EXT_samplerless_texture_functions : require
#extension GL_GOOGLE_include_directive : require
// Element-wise functions (activations, exp/log/sqrt, affine), forward and backward side by side.
//   forward:  y = f(x)              (OP < 16)
//   backward: y = dy * f'(x)        (OP >= 16; x is the forward input)
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0;
const uint SILU = 0, GELU = 1, RELU = 2, SCALE = 3, FILL = 4, EXP = 5, LOG = 6, SQRT = 7, SOFTPLUS = 8;
const uint SILU_BWD = 16, GELU_BWD = 17, RELU_BWD = 18, EXP_BWD = 21, LOG_BWD = 22, SQRT_BWD = 23, SOFTPLUS_BWD = 24;

layout(constant_id = 2) const uint TEXEL = 0;  // x, dy through texel bindings 0, 1
// VEC4 = 1 (with TEXEL; n a multiple of 4): an invocation does 4 elements,
// x and dy fetched as vec4s (one gather on llvmpipe instead of four).
layout(constant_id = 3) const uint VEC4 = 0;
// WHOLE = 1 (VEC4; host: the launch is exactly one invocation a quad): no bounds test, as in
// shaders/eltwise.comp.
layout(constant_id = 4) const uint WHOLE = 0;

layout(push_constant) uniform PC {
    FBuf y; FBuf x; FBuf dy;
    uint n;
    float alpha, beta;  // SCALE: y = alpha*x + beta; FILL: y = alpha
    int x_first, dy_first;
    int y_sfirst;  // unary_sb (VEC4): y's storage binding, in vec4s (set at compile)
} pc;

VKD_LOADER(ld_x, vkd_tex0, pc.x, pc.x_first)
VKD_LOADER(ld_dy, vkd_tex1, pc.dy, pc.dy_first)

const float GELU_K = 0.7978845608028654;  // sqrt(2/pi)
const float GELU_C = 0.044715;

// tanh written with exp of a negative argument only: finite for every x.
float tanh_stable(float u) {
    float e = exp(-2.0 * abs(u));
    return sign(u) * (1.0 - e) / (1.0 + e);
}

// f(x) forward, dy * f'(x) backward (dy unused forward).
float apply(float x, float dy) {
    float r;
    if (OP == SILU) {
        r = x / (1.0 + exp(-x));
    } else if (OP == GELU) {
        r = 0.5 * x * (1.0 + tanh_stable(GELU_K * (x + GELU_C * x * x * x)));
    } else if (OP == RELU) {
        r = max(x, 0.0);
    } else if (OP == SCALE) {
        r = pc.alpha * x + pc.beta;
    } else if (OP == EXP) {
        r = exp(x);
    } else if (OP == LOG) {
        r = log(x);
    } else if (OP == SQRT) {
        r = sqrt(x);
    } else if (OP == SOFTPLUS) {
        // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): no overflow for large |x|
        r = max(x, 0.0) + log(1.0 + exp(-abs(x)));
    } else if (OP == SOFTPLUS_BWD) {
        // sigmoid(x), through exp of a non-positive argument only
        float e = exp(-abs(x));
        r = dy * (x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
    } else if (OP == EXP_BWD) {
        r = dy * exp(x);
    } else if (OP == LOG_BWD) {
        r = dy / x;
    } else if (OP == SQRT_BWD) {
        r = dy * 0.5 / sqrt(x);
    } else if (OP == SILU_BWD) {
        float s = 1.0 / (1.0 + exp(-x));
        r = dy * s * (1.0 + x * (1.0 - s));
    } else if (OP == GELU_BWD) {
        float u = GELU_K * (x + GELU_C * x * x * x);
        float t = tanh_stable(u);
        float du = GELU_K * (1.0 + 3.0 * GELU_C * x * x);
        r = dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
    } else {  // RELU_BWD
        r = x > 0.0 ? dy : 0.0;
    }
    return r;
}

// VEC4: quad q
void quad(uint q) {
    vec4 r = vec4(pc.alpha);
    if (OP != FILL) {
        vec4 x = texelFetch(vkd_tex0, int(q) + pc.x_first);
        vec4 dy = OP >= 16u ? texelFetch(vkd_tex1, int(q) + pc.dy_first) : vec4(0.0);
        r = vec4(apply(x.x, dy.x), apply(x.y, dy.y), apply(x.z, dy.z), apply(x.w, dy.w));
    }
    VKD_OUT4(pc.y, 4u * q, vkd_keep(r), pc.y_sfirst);  // (VEC4 is a texel path)
}

void main() {
    uint i = flat_group() * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (VEC4 != 0u) {  // i counts vec4s
        if (WHOLE == 0u && i >= pc.n / 4u) return;
        quad(i);
        return;
    }
    if (i >= pc.n) return;
    if (OP == FILL) { pc.y.v[i] = pc.alpha; return; }
    float r = apply(ld_x(i), OP >= 16u ? ld_dy(i) : 0.0);
    pc.y.v[i] = TEXEL != 0u ? vkd_keep(r) : r;
}
