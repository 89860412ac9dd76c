// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for dm-thin-rs: what Rust cannot call or declare directly.
 *
 * - String module parameters (Rust module parameters are integers and bool
 *   only): the names the two targets register under, so the module can be
 *   loaded beside the C dm-thin-pool (pool_target=rthin-pool thin_target=rthin).
 * - Static inline functions and function-like macros of the block layer,
 *   workqueues and the allocation scope API.
 * - Synchronous metadata-block I/O: one bio per buffer, built here because
 *   it needs the page behind a kmalloc or vmalloc address.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/kdev_t.h>
#include <linux/workqueue.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/mm.h>
#include <linux/vmalloc.h>
#include <linux/sched/mm.h>
#include <linux/dm-kcopyd.h>
#include <linux/wait_bit.h>
#include <linux/shrinker.h>
#include <linux/sizes.h>

#include "bindings_helper.h"

static char pool_target[32] = "thin-pool";
module_param_string(pool_target, pool_target, sizeof(pool_target), 0444);
MODULE_PARM_DESC(pool_target, "Target name of the pool target (default thin-pool)");

static char thin_target[32] = "thin";
module_param_string(thin_target, thin_target, sizeof(thin_target), 0444);
MODULE_PARM_DESC(thin_target, "Target name of the thin target (default thin)");

/* As C dm-thin's: seconds a full pool queues I/O before erroring it (0 = forever). */
static unsigned int no_space_timeout_secs = 60;
module_param_named(no_space_timeout, no_space_timeout_secs, uint, 0644);
MODULE_PARM_DESC(no_space_timeout, "Out of data space queue IO timeout in seconds");

unsigned int dmrs_no_space_timeout(void)
{
	return READ_ONCE(no_space_timeout_secs);
}

/*
 * Metadata cache of each pool opened from now on, in MiB. 0: dm-bufio's
 * default share of memory (DM_BUFIO_MEMORY_PERCENT, 2% of RAM), at least
 * 16 MiB. Blocks are cached as they are used, and clean ones are given
 * back under memory pressure (the pool's shrinker).
 */
static unsigned int metadata_cache_mb;
module_param(metadata_cache_mb, uint, 0644);
MODULE_PARM_DESC(metadata_cache_mb, "Metadata cache per pool in MiB (default 0: 2% of memory, at least 16)");

unsigned long dmrs_metadata_cache_blocks(void)
{
	unsigned long mb = READ_ONCE(metadata_cache_mb);
	unsigned long blocks;

	if (mb)
		return max(mb, 1UL) * (SZ_1M / 4096);
	blocks = totalram_pages() / 50 * (PAGE_SIZE / 4096);
	return max(blocks, 4096UL);
}

struct shrinker *dmrs_shrinker_create(const char *name,
				      unsigned long (*count)(struct shrinker *, struct shrink_control *),
				      unsigned long (*scan)(struct shrinker *, struct shrink_control *),
				      void *private_data)
{
	struct shrinker *s = shrinker_alloc(0, "dm-thin-rs:%s", name);

	if (!s)
		return NULL;
	s->count_objects = count;
	s->scan_objects = scan;
	s->private_data = private_data;
	s->seeks = DEFAULT_SEEKS;
	shrinker_register(s);
	return s;
}

void dmrs_shrinker_free(struct shrinker *s)
{
	shrinker_free(s);
}

const char *dmrs_pool_target_name(void)
{
	return pool_target;
}

const char *dmrs_thin_target_name(void)
{
	return thin_target;
}

void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev)
{
	bio_set_dev(bio, bdev);
}

struct workqueue_struct *dmrs_alloc_ordered_workqueue(const char *name)
{
	return alloc_ordered_workqueue("%s", WQ_MEM_RECLAIM, name);
}

unsigned int dmrs_major(dev_t dev)
{
	return MAJOR(dev);
}

unsigned int dmrs_minor(dev_t dev)
{
	return MINOR(dev);
}

sector_t dmrs_bdev_nr_sectors(struct block_device *bdev)
{
	return bdev_nr_sectors(bdev);
}

void dmrs_init_work(struct work_struct *work, work_func_t fn)
{
	INIT_WORK(work, fn);
}

void dmrs_init_delayed_work(struct delayed_work *dwork, work_func_t fn)
{
	INIT_DELAYED_WORK(dwork, fn);
}

bool dmrs_queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	return queue_work(wq, work);
}

bool dmrs_queue_delayed_work_ms(struct workqueue_struct *wq, struct delayed_work *dwork,
				unsigned int msecs)
{
	return queue_delayed_work(wq, dwork, msecs_to_jiffies(msecs));
}

void dmrs_flush_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

struct work_struct *dmrs_delayed_work_work(struct delayed_work *dwork)
{
	return &dwork->work;
}

unsigned int dmrs_memalloc_noio_save(void)
{
	return memalloc_noio_save();
}

void dmrs_memalloc_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
}

/* A non-exclusive open: device-mapper holds the exclusive claim. */
struct file *dmrs_bdev_file_open(dev_t dev, bool write, int *err)
{
	blk_mode_t mode = BLK_OPEN_READ | (write ? BLK_OPEN_WRITE : 0);
	struct file *f = bdev_file_open_by_dev(dev, mode, NULL, NULL);

	if (IS_ERR(f)) {
		*err = PTR_ERR(f);
		return NULL;
	}
	return f;
}

void dmrs_get_file(struct file *f)
{
	get_file(f);
}

struct block_device *dmrs_file_bdev(struct file *f)
{
	return file_bdev(f);
}

/*
 * Closed at once, as device-mapper closes its table devices (so a device
 * the pool used is free again when the removing ioctl returns).
 */
void dmrs_fput(struct file *f)
{
	__fput_sync(f);
}

/*
 * Adds [buf, buf + len) to @bio page by page: an IoBuf (rust/dm/io_buf.rs),
 * kvmalloc memory of at most BIO_MAX_VECS pages, so every page is found.
 */
static int dmrs_bio_add_buf(struct bio *bio, const void *buf, unsigned int len)
{
	while (len) {
		unsigned int off = offset_in_page(buf);
		unsigned int n = min_t(unsigned int, len, PAGE_SIZE - off);
		struct page *page = is_vmalloc_addr(buf) ? vmalloc_to_page(buf) : virt_to_page(buf);

		if (bio_add_page(bio, page, n, off) != n)
			return -EIO;
		buf += n;
		len -= n;
	}
	return 0;
}

static unsigned int dmrs_nr_pages(const void *buf, unsigned int len)
{
	return DIV_ROUND_UP(offset_in_page(buf) + len, PAGE_SIZE);
}

int dmrs_rw_sync(struct block_device *bdev, sector_t sector, void *buf, unsigned int len,
		 bool write, bool fua)
{
	blk_opf_t opf = write ? (REQ_OP_WRITE | REQ_SYNC | (fua ? REQ_FUA : 0)) : REQ_OP_READ;
	struct bio *bio = bio_alloc(bdev, dmrs_nr_pages(buf, len), opf, GFP_NOIO);
	int r;

	bio->bi_iter.bi_sector = sector;
	r = dmrs_bio_add_buf(bio, buf, len);
	if (!r)
		r = submit_bio_wait(bio);
	bio_put(bio);
	return r;
}

/*
 * Batched writes: each call submits @prev chained to a new bio for @buf and
 * returns the new one; dmrs_batch_wait() submits the last and waits for the
 * whole chain (a chained parent completes after its children, with the
 * first error any of them saw). Allocation cannot fail (GFP_NOIO bios come
 * from a mempool).
 */
struct bio *dmrs_batch_write_add(struct bio *prev, struct block_device *bdev, sector_t sector,
				 const void *buf, unsigned int len)
{
	struct bio *bio = blk_next_bio(prev, bdev, dmrs_nr_pages(buf, len),
				       REQ_OP_WRITE | REQ_SYNC, GFP_NOIO);

	bio->bi_iter.bi_sector = sector;
	/* Cannot fail: the bio has a vec for every page of the buffer. */
	WARN_ON_ONCE(dmrs_bio_add_buf(bio, buf, len));
	return bio;
}

int dmrs_batch_wait(struct bio *last)
{
	int r = submit_bio_wait(last);

	bio_put(last);
	return r;
}

int dmrs_flush_bdev(struct block_device *bdev)
{
	return blkdev_issue_flush(bdev);
}

void dmrs_zero_fill_bio(struct bio *bio)
{
	zero_fill_bio(bio);
}

/*
 * Discards chained to a bio the target owns (C dm-thin's issue_discard and
 * end_discard): dmrs_discard_add() extends the chain of __blkdev_issue_discard
 * (each earlier bio is chained to the next and submitted); dmrs_discard_end()
 * chains the last one to the parent, submits it, and ends the parent, whose
 * completion then waits for every discard of the chain.
 */
void dmrs_discard_add(struct block_device *bdev, sector_t sector, sector_t nr, struct bio **last)
{
	__blkdev_issue_discard(bdev, sector, nr, GFP_NOIO, last);
}

void dmrs_discard_end(struct bio *parent, struct bio *last)
{
	/*
	 * A parent whose earlier chain completed (the target took it back in
	 * end_io) has its remaining count at 0: count its own end again.
	 */
	if (!bio_flagged(parent, BIO_CHAIN))
		atomic_set(&parent->__bi_remaining, 1);
	/*
	 * Cleared before the last discard is chained and submitted: from then
	 * on a child's completion may set the parent's status to its error
	 * (bio_chain_endio), which must reach end_io.
	 */
	parent->bi_status = BLK_STS_OK;
	if (last) {
		bio_chain(last, parent);
		submit_bio(last);
	}
	bio_endio(parent);
}

/* A line as DMERR, DMWARN and DMINFO print it, with the given prefix. */
void dmrs_dm_log(int level, const char *prefix, const char *msg)
{
	switch (level) {
	case 0:
		printk(KERN_ERR DM_NAME ": %s: %s\n", prefix, msg);
		break;
	case 1:
		printk(KERN_WARNING DM_NAME ": %s: %s\n", prefix, msg);
		break;
	default:
		printk(KERN_INFO DM_NAME ": %s: %s\n", prefix, msg);
	}
}

/* A count the worker sleeps on until it is zero (rust/dm/inflight.rs). */
void dmrs_wait_var_zero(unsigned long *count)
{
	wait_var_event(count, READ_ONCE(*count) == 0);
}

void dmrs_wake_up_var(unsigned long *count)
{
	/* The count's atomic update is ordered before the waiter check. */
	smp_mb();
	wake_up_var(count);
}

unsigned int dmrs_bdev_max_discard_sectors(struct block_device *bdev)
{
	return bdev_max_discard_sectors(bdev);
}

/* The name printk's %pg gives the device; the length it has (snprintf). */
size_t dmrs_bdev_name(struct block_device *bdev, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%pg", bdev);

	return n < 0 ? 0 : n;
}

bool dmrs_bdev_discard_supported(struct block_device *bdev)
{
	return bdev_max_discard_sectors(bdev) > 0;
}

int dmrs_discard_bdev(struct block_device *bdev, sector_t sector, sector_t nr_sects)
{
	return blkdev_issue_discard(bdev, sector, nr_sects, GFP_NOIO);
}

void dmrs_kcopyd_copy(struct dm_kcopyd_client *kc, struct block_device *from, sector_t from_sector,
		      struct block_device *to, sector_t to_sector, sector_t count,
		      dm_kcopyd_notify_fn fn, void *context)
{
	struct dm_io_region src = { .bdev = from, .sector = from_sector, .count = count };
	struct dm_io_region dst = { .bdev = to, .sector = to_sector, .count = count };

	dm_kcopyd_copy(kc, &src, 1, &dst, 0, fn, context);
}

void dmrs_kcopyd_zero(struct dm_kcopyd_client *kc, struct block_device *bdev, sector_t sector,
		      sector_t count, dm_kcopyd_notify_fn fn, void *context)
{
	struct dm_io_region dst = { .bdev = bdev, .sector = sector, .count = count };

	dm_kcopyd_zero(kc, 1, &dst, 0, fn, context);
}
