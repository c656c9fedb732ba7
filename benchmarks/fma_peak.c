/* The CPU's peak float32 multiply-add rate, measured (benchmarks/work.py compiles and runs it).

   cc -O2 -mavx512f -pthread fma_peak.c -o fma_peak     (or -mavx2 -mfma without AVX-512)
   ./fma_peak THREADS ITERATIONS

   Each thread runs 12 independent chains of vector fused multiply-adds (enough to fill two FMA
   units of 4-cycle latency), with nothing else in the loop, so the rate is the cores' vector
   FMA throughput at the clock they hold under that load. Prints
   "peak THREADS threads: RATE G multiply-adds/s (SECONDS s)" and a checksum that keeps the
   compiler from removing the chains. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define STORE _mm512_storeu_ps
#elif defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define STORE _mm256_storeu_ps
#else
#error "needs AVX-512F or AVX2 with FMA"
#endif

#define CHAINS 12

static long iterations;
static float sums[64];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *work(void *arg) {
    long id = (long)arg;
    /* Values the compiler cannot know: distinct chains it cannot merge or fold. */
    volatile float start[CHAINS], scale = 0.9999999f, add = 1e-7f;
    for (int j = 0; j < CHAINS; j++) start[j] = 1.0f + id * 1e-3f + j * 1e-4f;
    vec a[CHAINS];
    for (int j = 0; j < CHAINS; j++) a[j] = SET1(start[j]);
    vec b = SET1(scale), c = SET1(add);
    for (long i = 0; i < iterations; i++) {
        a[0] = FMA(a[0], b, c); a[1] = FMA(a[1], b, c); a[2] = FMA(a[2], b, c);
        a[3] = FMA(a[3], b, c); a[4] = FMA(a[4], b, c); a[5] = FMA(a[5], b, c);
        a[6] = FMA(a[6], b, c); a[7] = FMA(a[7], b, c); a[8] = FMA(a[8], b, c);
        a[9] = FMA(a[9], b, c); a[10] = FMA(a[10], b, c); a[11] = FMA(a[11], b, c);
    }
    float lanes[LANES], total = 0.0f;
    for (int j = 0; j < CHAINS; j++) {
        STORE(lanes, a[j]);
        for (int k = 0; k < LANES; k++) total += lanes[k];
    }
    sums[id % 64] = total;
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    iterations = argc > 2 ? atol(argv[2]) : 200000000L;
    if (threads < 1 || threads > 64 || iterations < 1) {
        fprintf(stderr, "usage: fma_peak THREADS(1-64) ITERATIONS\n");
        return 2;
    }
    pthread_t t[64];
    double begin = now();
    for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double seconds = now() - begin;
    double macs = (double)threads * iterations * CHAINS * LANES;
    float checksum = 0.0f;
    for (int i = 0; i < threads; i++) checksum += sums[i];
    printf("peak %d threads: %.1f G multiply-adds/s (%.3f s) checksum %g\n", threads,
           macs / seconds / 1e9, seconds, checksum);
    return 0;
}
