// Preloaded (LD_PRELOAD) into the sanitizer build's tests by tools/test_hardening.sh: dlclose
// keeps every library loaded. LeakSanitizer checks at exit, and a library unloaded before then
// leaves whatever its globals still pointed to as leaks from "<unknown module>", which no
// suppression (tools/lsan.supp names libraries) can match. The Vulkan loader unloads its drivers
// at vkDestroyInstance: on this AMD Zen 5 VM Mesa 22.3's lavapipe keeps 128 bytes of a one-time
// initialization (a pthread_once under vkEnumeratePhysicalDevices) in such a global, and every
// test process that made a Vulkan instance reported them. Kept loaded, those allocations stay
// reachable; vkdistill's own leaks are still reported, with its frames.
int dlclose(void *handle) {
    (void)handle;
    return 0;
}
