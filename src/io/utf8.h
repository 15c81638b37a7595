#ifndef VKD_IO_UTF8_H
#define VKD_IO_UTF8_H
// cJSON does not check UTF-8, and the formats we read require it: reject
// overlong forms, surrogates, code points past U+10FFFF and truncated sequences.
// Returns the byte offset of the first bad byte, or n if all is well.
#include <stddef.h>

static inline size_t vkd_utf8_check(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0)
            k = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            k = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return i;
        if (i + k >= n) return i;  // truncated sequence
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += k + 1;
    }
    return n;
}

#endif
