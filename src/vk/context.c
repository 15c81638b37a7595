// Vulkan context: instance (with validation when asked), device choice,
// feature detection, logical device and queue.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  // sched_getaffinity, CPU_COUNT
#endif
#include <ctype.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vk/vk.h"

// VK_KHR_cooperative_matrix postdates Debian 12's headers (1.3.239): declare
// the few definitions we need to query it, with the values from the spec.
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME "VK_KHR_cooperative_matrix"
#define VKD_STYPE_COOPMAT_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    uint32_t AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    uint32_t scope;
} VkCooperativeMatrixPropertiesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(
    VkPhysicalDevice, uint32_t *, VkCooperativeMatrixPropertiesKHR *);
#else
#define VKD_STYPE_COOPMAT_PROPERTIES_KHR VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR
#endif

void vkd_set_error(vkd_ctx *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    va_end(ap);
}

const char *vkd_ctx_error(const vkd_ctx *ctx) { return ctx->err; }
int vkd_ctx_validation_messages(const vkd_ctx *ctx) { return atomic_load(&ctx->validation_messages); }
const char *vkd_ctx_device_name(const vkd_ctx *ctx) { return ctx->f.name; }
uint64_t vkd_ctx_mem_current(const vkd_ctx *ctx) { return ctx->mem_current; }
uint64_t vkd_ctx_mem_peak(const vkd_ctx *ctx) { return ctx->mem_peak; }

const char *vkd_result_str(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "success";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_LAYER_NOT_PRESENT: return "layer not present";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "no compatible Vulkan driver";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    case VK_TIMEOUT: return "timeout";
    default: return "Vulkan error";
    }
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    vkd_ctx *ctx = user;
    // The loader itself reports through the same channel (e.g. about ICDs of
    // other vendors it cannot load); only the validation layer's messages count.
    if (data->pMessageIdName && strncmp(data->pMessageIdName, "Loader", 6) == 0) return VK_FALSE;
    atomic_fetch_add(&ctx->validation_messages, 1);
    fprintf(stderr, "vkdistill: validation %s: %s\n",
            (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
            data->pMessage ? data->pMessage : "(no message)");
    (void)type;
    return VK_FALSE;
}

static int has_layer(const char *name) {
    uint32_t n = 0;
    vkEnumerateInstanceLayerProperties(&n, NULL);
    VkLayerProperties *p = calloc(n ? n : 1, sizeof *p);
    vkEnumerateInstanceLayerProperties(&n, p);
    int found = 0;
    for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static int has_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
    VkExtensionProperties *p = calloc(n ? n : 1, sizeof *p);
    vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p);
    int found = 0;
    for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

// lavapipe compiles every shader for 8 lanes (256 bits) unless LP_NATIVE_VECTOR_WIDTH says
// otherwise, also on CPUs with AVX-512. On AMD's (Zen 4), 16 lanes made convolutions 15-20% and
// the GEMM shader ~2x cheaper; on an Intel Xeon with AVX-512 and AMX they made whole training
// iterations 20-27% slower (docs/performance_history.md). So ask for 512 bits on AMD CPUs with
// AVX-512 only, unless the user chose a width. gallivm reads the variable once per process,
// when the first Vulkan instance loads lavapipe, so this runs before every vkCreateInstance;
// other drivers ignore it.
void vkd_cpu_driver_env(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!getenv("LP_NATIVE_VECTOR_WIDTH") && __builtin_cpu_is("amd") && __builtin_cpu_supports("avx512f"))
        setenv("LP_NATIVE_VECTOR_WIDTH", "512", 0);
#endif
}

// lavapipe runs a dispatch's workgroups on LP_NUM_THREADS worker threads (default: one per online
// CPU) while the thread that submitted it waits; 0 runs them on that thread itself. Several
// ranks of one node share its CPUs: each takes its share of them, at most the CPUs it is bound
// to (mpirun binds a rank to a core for 2 ranks, to a socket, which others share, for more),
// and a rank with one CPU runs its dispatches on its own thread. On this 2-core VM two ranks so
// took 3-32% less time a step than one process with a thread per core
// (docs/performance_history.md, "A rank a core"): every dispatch's hand-off to the workers and
// wait for the slower one, ~30 us and a core idle for part of it, are gone. -1: leave lavapipe's
// default (one rank).
int vkd_cpu_threads_per_rank(int affinity_cpus, int online_cpus, int node_ranks) {
    if (node_ranks <= 1) return -1;
    int cpus = online_cpus / node_ranks;
    if (affinity_cpus > 0 && affinity_cpus < cpus) cpus = affinity_cpus;
    return cpus <= 1 ? 0 : cpus;
}

// The CPUs this process may run on (its affinity mask: mpirun's binding, taskset, a container's
// cpuset), else the online ones.
int vkd_cpus_available(void) {
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void vkd_cpu_driver_threads(int node_ranks) {
    if (getenv("LP_NUM_THREADS")) return;  // the user's choice
    int t = vkd_cpu_threads_per_rank(vkd_cpus_available(), (int)sysconf(_SC_NPROCESSORS_ONLN), node_ranks);
    if (t < 0) return;
    char v[16];
    snprintf(v, sizeof v, "%d", t);
    setenv("LP_NUM_THREADS", v, 0);
}

// The threads a CPU device runs a dispatch's workgroups on: lavapipe's LP_NUM_THREADS, which it
// has read by now (0: the submitting thread alone), else its default, one per online CPU. Ops that
// cut work into workgroups for the cores (the weight gradient's chunks) ask this rather than the
// machine: a rank left one CPU by vkd_cpu_driver_threads would otherwise cut its sums for two
// threads it does not have, and pay the passes that add the pieces. 0 on other devices.
static int device_threads(const vkd_features *f) {
    if (f->type != VK_PHYSICAL_DEVICE_TYPE_CPU) return 0;
    const char *t = getenv("LP_NUM_THREADS");
    char *end;
    long n = t && *t ? strtol(t, &end, 10) : -1;
    if (n >= 0 && !*end) return n > 1 ? (int)n : 1;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 1 ? (int)n : 1;
}

// The Mesa release in a driver's info ("Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)"): major * 100 +
// minor, 0 when it names none.
static int mesa_release(const char *info) {
    const char *m = strstr(info, "Mesa ");
    int major, minor;
    return m && sscanf(m + 5, "%d.%d", &major, &minor) == 2 ? major * 100 + minor : 0;
}

// A lane group's exchange (shaders/lanes.glsl) by shuffles or by broadcasts. Measured here
// (`bench gemm` 1024^3, 16 lanes): llvmpipe of Mesa 22.3 makes a shuffle a permute and a
// broadcast of a lane chosen at run time a long detour (97 against 8.7 GFLOP/s); that of Mesa
// 25.0 makes a shuffle of other than 8 lanes a loop over the lanes and a broadcast an extract
// (19 against 72). Releases between were not measured: 23 is where the later code is assumed.
int vkd_lane_bcast_wanted(const vkd_features *f) {
    const char *env = getenv("VKD_LANE_BCAST");  // 0 / 1: override the choice (benchmarks, tests)
    if (env && *env) return atoi(env) != 0;
    return f->driver_id == VK_DRIVER_ID_MESA_LLVMPIPE && mesa_release(f->driver_info) >= 2300 &&
           f->subgroup_size != 8;
}

static VkResult create_instance(int validation, vkd_ctx *ctx, VkInstance *out) {
    vkd_cpu_driver_env();
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "vkdistill",
                             .pEngineName = "vkdistill",
                             .apiVersion = VK_API_VERSION_1_2};
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *exts[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vf = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                  .enabledValidationFeatureCount = validation == 2 ? 0 : 1,
                                  .pEnabledValidationFeatures = enables};
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .pNext = &vf,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
        .pUserData = ctx};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                               .pApplicationInfo = &app,
                               .pNext = validation ? &dbg : NULL,
                               .enabledLayerCount = validation ? 1 : 0,
                               .ppEnabledLayerNames = layers,
                               .enabledExtensionCount = validation ? 1 : 0,
                               .ppEnabledExtensionNames = exts};
    VkResult r = vkCreateInstance(&ci, NULL, out);
    if (r == VK_SUCCESS && validation) {
        PFN_vkCreateDebugUtilsMessengerEXT fn =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(*out, "vkCreateDebugUtilsMessengerEXT");
        dbg.pNext = NULL;
        if (fn) fn(*out, &dbg, NULL, &ctx->messenger);
    }
    return r;
}

static const char *type_str(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

// Lower is better: discrete, integrated, virtual, CPU (lavapipe), other.
static int type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static void query_features(VkInstance inst, VkPhysicalDevice pd, vkd_features *f) {
    memset(f, 0, sizeof *f);
    VkPhysicalDeviceSubgroupSizeControlProperties ssc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                             .pNext = &ssc};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
                                            .pNext = &sg};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    VkPhysicalDeviceProperties *p = &p2.properties;
    f->api_version = p->apiVersion;
    f->driver_version = p->driverVersion;
    f->driver_id = drv.driverID;
    f->vendor_id = p->vendorID;
    f->device_id = p->deviceID;
    f->type = p->deviceType;
    snprintf(f->name, sizeof f->name, "%s", p->deviceName);
    snprintf(f->driver_name, sizeof f->driver_name, "%s", drv.driverName);
    snprintf(f->driver_info, sizeof f->driver_info, "%s", drv.driverInfo);
    f->subgroup_size = sg.subgroupSize;
    f->subgroup_ops = sg.supportedOperations;
    f->subgroup_min = ssc.minSubgroupSize ? ssc.minSubgroupSize : sg.subgroupSize;
    f->subgroup_max = ssc.maxSubgroupSize ? ssc.maxSubgroupSize : sg.subgroupSize;
    f->shared_mem = p->limits.maxComputeSharedMemorySize;
    f->max_wg_invocations = p->limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) f->max_wg_count[i] = p->limits.maxComputeWorkGroupCount[i];
    f->max_push = p->limits.maxPushConstantsSize;
    f->max_storage_range = p->limits.maxStorageBufferRange;
    f->max_texel_elements = p->limits.maxTexelBufferElements;
    f->texel_align = (uint32_t)p->limits.minTexelBufferOffsetAlignment;
    f->sbuf_align = (uint32_t)p->limits.minStorageBufferOffsetAlignment;
    f->timestamp_period = p->limits.timestampPeriod;

    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2b = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(pd, &p2b);
    f->max_alloc = m3.maxMemoryAllocationSize;

    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    if (VK_API_VERSION_MINOR(p->apiVersion) >= 2 || VK_API_VERSION_MAJOR(p->apiVersion) > 1) {
        vkGetPhysicalDeviceFeatures2(pd, &f2);
        f->fp16 = f12.shaderFloat16;
        f->int8 = f12.shaderInt8;
        f->bda = f12.bufferDeviceAddress;
        f->storage16 = f11.storageBuffer16BitAccess;
    }
    VkPhysicalDeviceFeatures base;
    vkGetPhysicalDeviceFeatures(pd, &base);
    f->int64 = base.shaderInt64;
    f->fp64 = base.shaderFloat64;
    f->subgroup_size_control = has_device_ext(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME) ||
                               VK_API_VERSION_MINOR(p->apiVersion) >= 3;

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties qp[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qp);
    for (uint32_t i = 0; i < nq; i++)
        if (qp[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            f->timestamp_bits = qp[i].timestampValidBits;
            break;
        }

    f->coopmat = has_device_ext(pd, VK_KHR_COOPERATIVE_MATRIX_EXTENSION_NAME);
    if (f->coopmat) {
        PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR fn =
            (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
                inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
        uint32_t n = 0;
        if (fn && fn(pd, &n, NULL) == VK_SUCCESS && n) {
            VkCooperativeMatrixPropertiesKHR *cp = calloc(n, sizeof *cp);
            for (uint32_t i = 0; i < n; i++) cp[i].sType = VKD_STYPE_COOPMAT_PROPERTIES_KHR;
            fn(pd, &n, cp);
            for (uint32_t i = 0; i < n && f->ncoop < 32; i++, f->ncoop++) {
                f->coop[f->ncoop].m = cp[i].MSize;
                f->coop[f->ncoop].n = cp[i].NSize;
                f->coop[f->ncoop].k = cp[i].KSize;
                f->coop[f->ncoop].a = (uint32_t)cp[i].AType;
                f->coop[f->ncoop].b = (uint32_t)cp[i].BType;
                f->coop[f->ncoop].c = (uint32_t)cp[i].CType;
                f->coop[f->ncoop].r = (uint32_t)cp[i].ResultType;
            }
            free(cp);
        }
    }
    vkGetPhysicalDeviceMemoryProperties(pd, &f->mem);
}

static int enumerate(VkInstance inst, VkPhysicalDevice **out, uint32_t *n) {
    *n = 0;
    if (vkEnumeratePhysicalDevices(inst, n, NULL) != VK_SUCCESS || *n == 0) return -1;
    *out = calloc(*n, sizeof **out);
    vkEnumeratePhysicalDevices(inst, n, *out);
    return 0;
}

static int ci_contains(const char *hay, const char *needle) {
    size_t nl = strlen(needle);
    for (const char *h = hay; *h; h++) {
        size_t i = 0;
        while (i < nl && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == nl) return 1;
    }
    return 0;
}

// Requirement i of every vkdistill code path (NULL past the last): its name,
// and in *ok whether device f has it. $VKD_MASK_FEATURE (a name substring)
// pretends a device lacks one, so the refusal can be tested on any device.
static const char *vkd_requirement(const vkd_features *f, int i, int *ok) {
    static const char *const names[] = {
        "Vulkan 1.2",
        "bufferDeviceAddress (shaders reach tensors by address)",
        "subgroup shuffle and ballot in compute shaders (matmul, conv2d)",
        "256 invocations per compute workgroup",
    };
    if (i < 0 || i >= (int)(sizeof names / sizeof *names)) return NULL;
    int have[] = {
        VK_API_VERSION_MAJOR(f->api_version) > 1 || VK_API_VERSION_MINOR(f->api_version) >= 2,
        f->bda != 0,
        (f->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) && (f->subgroup_ops & VK_SUBGROUP_FEATURE_BALLOT_BIT),
        f->max_wg_invocations >= 256,
    };
    const char *mask = getenv("VKD_MASK_FEATURE");
    *ok = have[i] && !(mask && *mask && ci_contains(names[i], mask));
    return names[i];
}

int vkd_list_devices(FILE *out, char *err, size_t errlen) {
    vkd_ctx tmp = {0};
    VkInstance inst;
    VkResult r = create_instance(0, &tmp, &inst);
    if (r != VK_SUCCESS) {
        snprintf(err, errlen, "no Vulkan driver: vkCreateInstance failed (%s); install a GPU driver or mesa-vulkan-drivers",
                 vkd_result_str(r));
        return -1;
    }
    VkPhysicalDevice *pds;
    uint32_t n;
    if (enumerate(inst, &pds, &n)) {
        snprintf(err, errlen, "no Vulkan device found; install a GPU driver or mesa-vulkan-drivers (lavapipe)");
        vkDestroyInstance(inst, NULL);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        vkd_features f;
        query_features(inst, pds[i], &f);
        fprintf(out, "%u: %s (%s, %s)", i, f.name, type_str(f.type), f.driver_name);
        int ok;
        for (int k = 0; vkd_requirement(&f, k, &ok); k++)
            if (!ok) fprintf(out, "; lacks %s", vkd_requirement(&f, k, &ok));
        fprintf(out, "\n");
    }
    free(pds);
    vkDestroyInstance(inst, NULL);
    return 0;
}

static uint32_t pick_memory_type(const VkPhysicalDeviceMemoryProperties *mp, VkMemoryPropertyFlags want,
                                 VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        VkMemoryPropertyFlags fl = mp->memoryTypes[i].propertyFlags;
        if ((fl & want) == want && !(fl & avoid)) return i;
    }
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++)
        if ((mp->memoryTypes[i].propertyFlags & want) == want) return i;
    return UINT32_MAX;
}

vkd_ctx *vkd_ctx_create(const vkd_ctx_opts *opts, char *err, size_t errlen) {
    vkd_ctx_opts o = opts ? *opts : (vkd_ctx_opts){.validation = -1};
    vkd_ctx *ctx = calloc(1, sizeof *ctx);
    const char *devsel = o.device;
    if (!devsel || !*devsel) devsel = getenv("VKD_DEVICE");
    int validation = o.validation;
    if (validation < 0) {
        const char *v = getenv("VKD_VALIDATION");
        // "core": the validation layer without its synchronization checks, which cost
        // most of the time of long runs (every submission is re-checked).
        validation = v && *v && strcmp(v, "0") != 0 ? (strcmp(v, "core") == 0 ? 2 : 1) : 0;
    }
    if (validation && !has_layer("VK_LAYER_KHRONOS_validation")) {
        snprintf(err, errlen, "validation requested but VK_LAYER_KHRONOS_validation is not installed "
                              "(apt-get install vulkan-validationlayers)");
        free(ctx);
        return NULL;
    }
    ctx->validation = validation;
    // lavapipe reads LP_NUM_THREADS when it creates its screen (while enumerating devices);
    // 0 runs a dispatch's workgroups on the thread that submits it.
    if (o.small_dispatches) setenv("LP_NUM_THREADS", "0", 0);
    VkResult r = create_instance(validation, ctx, &ctx->instance);
    if (r != VK_SUCCESS) {
        snprintf(err, errlen, "no Vulkan driver: vkCreateInstance failed (%s); install a GPU driver or mesa-vulkan-drivers",
                 vkd_result_str(r));
        free(ctx);
        return NULL;
    }
    VkPhysicalDevice *pds = NULL;
    uint32_t n = 0;
    if (enumerate(ctx->instance, &pds, &n)) {
        snprintf(err, errlen, "no Vulkan device found; install a GPU driver or mesa-vulkan-drivers (lavapipe)");
        vkd_ctx_destroy(ctx);
        return NULL;
    }
    int chosen = -1;
    if (devsel && *devsel) {
        char *end;
        long idx = strtol(devsel, &end, 10);
        if (*end == '\0') {
            if (idx < 0 || idx >= (long)n) {
                snprintf(err, errlen, "device index %ld out of range: %u Vulkan device(s) present (see 'vkdistill info --list')",
                         idx, n);
                free(pds);
                vkd_ctx_destroy(ctx);
                return NULL;
            }
            chosen = (int)idx;
        } else {
            for (uint32_t i = 0; i < n && chosen < 0; i++) {
                vkd_features f;
                query_features(ctx->instance, pds[i], &f);
                if (ci_contains(f.name, devsel) || ci_contains(f.driver_name, devsel)) chosen = (int)i;
            }
            if (chosen < 0) {
                snprintf(err, errlen, "no Vulkan device matches '%s' (see 'vkdistill info --list')", devsel);
                free(pds);
                vkd_ctx_destroy(ctx);
                return NULL;
            }
        }
    } else {
        int best = 99;
        for (uint32_t i = 0; i < n; i++) {
            vkd_features f;
            query_features(ctx->instance, pds[i], &f);
            int rank = type_rank(f.type);
            if (rank < best) best = rank, chosen = (int)i;
        }
    }
    ctx->phys = pds[chosen];
    free(pds);
    query_features(ctx->instance, ctx->phys, &ctx->f);
    vkd_features *f = &ctx->f;
    int ok = 1;
    for (int i = 0; ok && vkd_requirement(f, i, &ok); i++)
        if (!ok) {
            snprintf(err, errlen, "device '%s' (Vulkan %u.%u) lacks %s, which vkdistill needs (see 'vkdistill info --list')",
                     f->name, VK_API_VERSION_MAJOR(f->api_version), VK_API_VERSION_MINOR(f->api_version),
                     vkd_requirement(f, i, &ok));
            vkd_ctx_destroy(ctx);
            return NULL;
        }

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, NULL);
    VkQueueFamilyProperties qp[16];
    if (nq > 16) nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &nq, qp);
    ctx->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < nq; i++)  // prefer a compute queue that also does graphics (the main one)
        if ((qp[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && ctx->queue_family == UINT32_MAX) ctx->queue_family = i;
    if (ctx->queue_family == UINT32_MAX) {
        snprintf(err, errlen, "device '%s' has no compute queue", f->name);
        vkd_ctx_destroy(ctx);
        return NULL;
    }
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = ctx->queue_family,
                                   .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .bufferDeviceAddress = VK_TRUE,
                                            .shaderFloat16 = f->fp16,
                                            .shaderInt8 = f->int8};
    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                            .pNext = &f12,
                                            .storageBuffer16BitAccess = f->storage16};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
    f2.features.shaderInt64 = f->int64;
    f2.features.shaderFloat64 = f->fp64;
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .pNext = &f2,
                              .queueCreateInfoCount = 1,
                              .pQueueCreateInfos = &qci};
    r = vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device);
    if (r != VK_SUCCESS) {
        snprintf(err, errlen, "vkCreateDevice on '%s' failed: %s", f->name, vkd_result_str(r));
        vkd_ctx_destroy(ctx);
        return NULL;
    }
    vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);
    VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                   .queueFamilyIndex = ctx->queue_family};
    vkCreateCommandPool(ctx->device, &pci, NULL, &ctx->pool);
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    vkCreateFence(ctx->device, &fci, NULL, &ctx->fence);
    VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = VKD_PUSH_MAX};
    VkDescriptorSetLayoutBinding tb[VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS];
    for (uint32_t i = 0; i < VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS; i++)
        tb[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                               .descriptorType = i < VKD_TEXEL_BINDINGS
                                                                     ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                                     : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1,
                                               .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo tli = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = VKD_TEXEL_BINDINGS + VKD_STORE_BINDINGS,
                                           .pBindings = tb};
    vkCreateDescriptorSetLayout(ctx->device, &tli, NULL, &ctx->texel_dsl);
    VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                      .setLayoutCount = 1,
                                      .pSetLayouts = &ctx->texel_dsl,
                                      .pushConstantRangeCount = 1,
                                      .pPushConstantRanges = &pcr};
    vkCreatePipelineLayout(ctx->device, &lci, NULL, &ctx->layout);

    // Device-local memory for tensors; host-visible coherent memory for per-step
    // scalars and staging (prefer non-device-local so it does not eat VRAM).
    ctx->mt_device = pick_memory_type(&f->mem, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
    ctx->mt_host = pick_memory_type(&f->mem, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                    VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    if (ctx->mt_device == UINT32_MAX) ctx->mt_device = ctx->mt_host;
    if (ctx->mt_host == UINT32_MAX) {
        snprintf(err, errlen, "device '%s' has no host-visible coherent memory", f->name);
        vkd_ctx_destroy(ctx);
        return NULL;
    }
    vkd_pipeline_cache_open(ctx);
    ctx->device_threads = device_threads(f);
    ctx->lane_bcast = vkd_lane_bcast_wanted(f);
    if (vkd_compile_threads_init(ctx) || vkd_texel_init(ctx)) {
        snprintf(err, errlen, "%s", ctx->err);
        vkd_ctx_destroy(ctx);
        return NULL;
    }
    if (!o.quiet) fprintf(stderr, "vkdistill: device %s (%s)\n", f->name, type_str(f->type));
    return ctx;
}

void vkd_ctx_destroy(vkd_ctx *ctx) {
    if (!ctx) return;
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        vkd_pipeline_cache_save(ctx);
        vkd_pipelines_destroy(ctx);
        vkd_texel_destroy(ctx);
        vkd_blocks_destroy_all(ctx);
        if (ctx->layout) vkDestroyPipelineLayout(ctx->device, ctx->layout, NULL);
        if (ctx->texel_dsl) vkDestroyDescriptorSetLayout(ctx->device, ctx->texel_dsl, NULL);
        if (ctx->fence) vkDestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->pool) vkDestroyCommandPool(ctx->device, ctx->pool, NULL);
        vkDestroyDevice(ctx->device, NULL);
    }
    if (ctx->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT fn =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(ctx->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (fn) fn(ctx->instance, ctx->messenger, NULL);
    }
    if (ctx->instance) vkDestroyInstance(ctx->instance, NULL);
    free(ctx);
}

static const char *comp_type(uint32_t t) {
    static const char *names[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
    return t < sizeof names / sizeof *names ? names[t] : "?";
}

void vkd_ctx_print_info(vkd_ctx *ctx, FILE *out) {
    vkd_features *f = &ctx->f;
    fprintf(out, "device:            %s (%s)\n", f->name, type_str(f->type));
    fprintf(out, "driver:            %s %s\n", f->driver_name, f->driver_info);
    fprintf(out, "vulkan:            %u.%u.%u\n", VK_API_VERSION_MAJOR(f->api_version),
            VK_API_VERSION_MINOR(f->api_version), VK_API_VERSION_PATCH(f->api_version));
    fprintf(out, "vendor/device id:  0x%04x / 0x%04x\n", f->vendor_id, f->device_id);
    fprintf(out, "fp16 arithmetic:   %s\n", f->fp16 ? "yes" : "no");
    fprintf(out, "int8 arithmetic:   %s\n", f->int8 ? "yes" : "no");
    fprintf(out, "16-bit storage:    %s\n", f->storage16 ? "yes" : "no");
    fprintf(out, "int64 / fp64:      %s / %s\n", f->int64 ? "yes" : "no", f->fp64 ? "yes" : "no");
    fprintf(out, "subgroup size:     %u (min %u, max %u%s)\n", f->subgroup_size, f->subgroup_min, f->subgroup_max,
            f->subgroup_size_control ? ", controllable" : "");
    fprintf(out, "subgroup ops:      %s%s%s%s\n", (f->subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT) ? "arithmetic " : "",
            (f->subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) ? "shuffle " : "",
            (f->subgroup_ops & VK_SUBGROUP_FEATURE_BALLOT_BIT) ? "ballot " : "",
            (f->subgroup_ops & VK_SUBGROUP_FEATURE_CLUSTERED_BIT) ? "clustered" : "");
    fprintf(out, "lane exchange:     %s\n",
            ctx->lane_bcast ? "broadcasts (VKD_LANE_BCAST=0 asks for shuffles)"
                            : "shuffles (VKD_LANE_BCAST=1 asks for broadcasts)");
    fprintf(out, "shared memory:     %u KiB per workgroup, %u invocations max\n", f->shared_mem / 1024,
            f->max_wg_invocations);
    fprintf(out, "storage range:     %llu MiB per binding\n", (unsigned long long)(f->max_storage_range >> 20));
    fprintf(out, "max allocation:    %llu MiB\n", (unsigned long long)(f->max_alloc >> 20));
    fprintf(out, "texel buffers:     up to %u elements; operands read through them: %s\n", f->max_texel_elements,
            ctx->texel ? "yes (a CPU device; VKD_TEXEL=0 turns it off)" : "no (buffer addresses; VKD_TEXEL=1 turns it on)");
    fprintf(out, "storage outputs:   %s\n",
            ctx->sbuf ? "yes: ops write their quads through storage bindings (VKD_SBUF=0 turns it off)"
                      : "no (buffer addresses)");
    if (f->type == VK_PHYSICAL_DEVICE_TYPE_CPU) {  // lavapipe's (other CPU drivers ignore it)
        // where the count comes from, then the count the ops cut their work for (device_threads)
        const char *t = getenv("LP_NUM_THREADS");
        fprintf(out, "device threads:    %s%s: %d%s\n", t ? "LP_NUM_THREADS=" : "one per online CPU (lavapipe's default)",
                t ? t : "", ctx->device_threads,
                t && strcmp(t, "0") == 0 ? " (workgroups run on the submitting thread)" : "");
    }
    fprintf(out, "push constants:    %u bytes\n", f->max_push);
    fprintf(out, "buffer addresses:  %s\n", f->bda ? "yes" : "no");
    fprintf(out, "timestamps:        %s (%.3f ns/tick)\n", f->timestamp_bits ? "yes" : "no", f->timestamp_period);
    fprintf(out, "cooperative matrix: %s", f->coopmat ? "VK_KHR_cooperative_matrix" : "no");
    for (int i = 0; i < f->ncoop; i++)
        fprintf(out, "%s %ux%ux%u %s*%s+%s", i ? "," : ":", f->coop[i].m, f->coop[i].n, f->coop[i].k,
                comp_type(f->coop[i].a), comp_type(f->coop[i].b), comp_type(f->coop[i].c));
    fprintf(out, "\n");
    for (uint32_t i = 0; i < f->mem.memoryHeapCount; i++)
        fprintf(out, "memory heap %u:     %llu MiB%s\n", i, (unsigned long long)(f->mem.memoryHeaps[i].size >> 20),
                (f->mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) ? " device-local" : "");
    int ok;
    for (int i = 0; vkd_requirement(f, i, &ok); i++)
        fprintf(out, "%s %s: %s\n", i ? "                  " : "requires:         ", vkd_requirement(f, i, &ok),
                ok ? "yes" : "MISSING");
    fprintf(out, "validation:        %s\n",
            ctx->validation == 2 ? "on (Khronos, core checks)" : ctx->validation ? "on (Khronos, synchronization)" : "off");
    fprintf(out, "pipeline cache:    %s\n", ctx->cache_path[0] ? ctx->cache_path : "(none)");
}
