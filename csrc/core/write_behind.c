#include "write_behind.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flow_sink.h"

int write_job_into(int directory_fd, int fd, const struct write_job *job)
{
    int written = flow_file_write_two(fd, job->header, sizeof job->header, job->bytes, job->length) == 0;
    int saved = errno;
    if (close(fd) == 0 && written)
        return 0;
    if (written)
        saved = errno;
    /* as the tracer does itself: no half-written file is left behind */
    unlinkat(directory_fd, job->name, 0);
    errno = saved;
    return -1;
}

/* Creates one file; returns 0, or -1 with *failure filled in. */
static int run_job(int directory_fd, const struct write_job *job, struct write_failure *failure)
{
    int fd = flow_file_create_at(directory_fd, job->name);
    if (fd >= 0 && write_job_into(directory_fd, fd, job) == 0)
        return 0;
    failure->code = errno;
    snprintf(failure->message, sizeof failure->message, "%s",
             fd < 0 ? flow_file_open_failure(failure->code) : "cannot write output file");
    snprintf(failure->name, sizeof failure->name, "%s", job->name);
    return -1;
}

enum { WAKE_JOBS = 16, WAKE_BYTES = 1 << 20, IDLE_POLL_MS = 10 };

/* Whether a waiting tracer may go on. Once it had to wait, it waits until
 * half the queue is free: fewer wake-ups than one per job. */
static int has_room(const struct write_behind *wb)
{
    return wb->count <= WRITE_BEHIND_JOBS / 2 && (wb->count == 0 || wb->queued_bytes <= wb->max_bytes / 2);
}

/* Keeps a job for the tracer (called with the lock held). Returns 0 or -1 (memory). */
static int defer(struct write_behind *wb, struct write_job job)
{
    wb->short_of_descriptors = 1;
    if (wb->deferred_count == wb->deferred_capacity) {
        size_t capacity = wb->deferred_capacity ? 2 * wb->deferred_capacity : 16;
        struct write_job *grown = realloc(wb->deferred, capacity * sizeof *grown);
        if (!grown) {
            free(job.name);
            free(job.bytes);
            return -1;
        }
        wb->deferred = grown;
        wb->deferred_capacity = capacity;
    }
    wb->deferred[wb->deferred_count++] = job;
    return 0;
}

static void *work(void *argument)
{
    struct write_behind *wb = argument;
    pthread_mutex_lock(&wb->lock);
    for (;;) {
        while (wb->count == 0 && !wb->stopping) {
            /* the tracer wakes sleepers only for a batch of jobs; a sleeper
             * also looks for itself every IDLE_POLL_MS, so a finished flow's
             * file appears soon even when the capture arrives slowly */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += IDLE_POLL_MS * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            wb->idle_workers++;
            pthread_cond_timedwait(&wb->work_ready, &wb->lock, &until);
            wb->idle_workers--;
        }
        if (wb->count == 0)
            break; /* stopping, and nothing left */
        struct write_job job = wb->jobs[wb->first];
        wb->first = (wb->first + 1) % WRITE_BEHIND_JOBS;
        wb->count--;
        pthread_mutex_unlock(&wb->lock);

        struct write_failure failure;
        int status = run_job(wb->directory_fd, &job, &failure);
        int no_descriptor = status < 0 && (failure.code == EMFILE || failure.code == ENFILE);
        if (!no_descriptor) {
            free(job.name);
            free(job.bytes);
        }

        pthread_mutex_lock(&wb->lock);
        wb->queued_bytes -= job.length;
        if (no_descriptor && defer(wb, job) == 0)
            status = 0;
        if (status < 0 && !wb->failed) {
            wb->failed = 1;
            wb->failure = failure;
        }
        if (wb->producer_waiting && has_room(wb))
            pthread_cond_signal(&wb->room_ready);
    }
    pthread_mutex_unlock(&wb->lock);
    return NULL;
}

struct write_behind *write_behind_start(int directory_fd, int thread_count, size_t max_bytes)
{
    struct write_behind *wb = calloc(1, sizeof *wb);
    if (!wb)
        return NULL;
    wb->directory_fd = directory_fd;
    wb->max_bytes = max_bytes;
    pthread_mutex_init(&wb->lock, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&wb->work_ready, &monotonic);
    pthread_condattr_destroy(&monotonic);
    pthread_cond_init(&wb->room_ready, NULL);

    /* signals (Ctrl-C) stay with the thread that runs the capture loop */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int error = 0;
    if (thread_count > WRITE_BEHIND_MAX_THREADS)
        thread_count = WRITE_BEHIND_MAX_THREADS;
    while (wb->thread_count < thread_count &&
           (error = pthread_create(&wb->threads[wb->thread_count], NULL, work, wb)) == 0)
        wb->thread_count++;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    if (wb->thread_count == 0) {
        write_behind_finish(wb, NULL, NULL, NULL);
        errno = error ? error : EINVAL;
        return NULL;
    }
    return wb; /* fewer threads than asked for still work */
}

int write_behind_submit(struct write_behind *wb, struct write_job job)
{
    pthread_mutex_lock(&wb->lock);
    /* a job larger than max_bytes still goes, once the queue is empty */
    if (wb->count == WRITE_BEHIND_JOBS || (wb->count > 0 && wb->queued_bytes + job.length > wb->max_bytes)) {
        wb->producer_waiting = 1;
        while (!has_room(wb))
            pthread_cond_wait(&wb->room_ready, &wb->lock);
        wb->producer_waiting = 0;
    }
    wb->jobs[(wb->first + wb->count) % WRITE_BEHIND_JOBS] = job;
    wb->count++;
    wb->queued_bytes += job.length;
    int status = wb->failed ? -1 : wb->short_of_descriptors ? 1 : 0;
    /* sleeping workers are woken for a batch of jobs, not for each one */
    if (wb->idle_workers > 0 && (wb->count >= WAKE_JOBS || wb->queued_bytes >= WAKE_BYTES))
        pthread_cond_signal(&wb->work_ready);
    pthread_mutex_unlock(&wb->lock);
    return status;
}

int write_behind_finish(struct write_behind *wb, struct write_failure *failure, struct write_job **deferred,
                        size_t *deferred_count)
{
    pthread_mutex_lock(&wb->lock);
    wb->stopping = 1;
    pthread_cond_broadcast(&wb->work_ready);
    pthread_mutex_unlock(&wb->lock);
    for (int i = 0; i < wb->thread_count; i++)
        pthread_join(wb->threads[i], NULL);
    int failed = wb->failed;
    if (failed && failure)
        *failure = wb->failure;
    if (deferred) {
        *deferred = wb->deferred;
        *deferred_count = wb->deferred_count;
    } else {
        for (size_t i = 0; i < wb->deferred_count; i++) {
            free(wb->deferred[i].name);
            free(wb->deferred[i].bytes);
        }
        free(wb->deferred);
    }
    pthread_mutex_destroy(&wb->lock);
    pthread_cond_destroy(&wb->work_ready);
    pthread_cond_destroy(&wb->room_ready);
    free(wb);
    return failed ? -1 : 0;
}
