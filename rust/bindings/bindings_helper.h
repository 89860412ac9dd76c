/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input to bindgen for dm-thin-rs: the device-mapper, bio and checksum APIs
 * the module calls, plus the C helpers in helpers.c (for static inlines,
 * macros and string module parameters Rust cannot express).
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/crc32c.h>
#include <linux/device-mapper.h>
#include <linux/dm-kcopyd.h>
#include <linux/kdev_t.h>
#include <linux/workqueue.h>
#include <linux/fs.h>
#include <linux/file.h>
#include <linux/sched/mm.h>
#include <linux/shrinker.h>

/* Constants defined through casts, which bindgen cannot read as macros. */
const blk_mode_t DMRS_CONST_BLK_OPEN_READ = BLK_OPEN_READ;
const blk_mode_t DMRS_CONST_BLK_OPEN_WRITE = BLK_OPEN_WRITE;
const blk_opf_t DMRS_CONST_REQ_OP_MASK = REQ_OP_MASK;
const blk_opf_t DMRS_CONST_REQ_FUA = REQ_FUA;
const blk_opf_t DMRS_CONST_REQ_PREFLUSH = REQ_PREFLUSH;
const unsigned int DMRS_CONST_BIO_MAX_VECS = BIO_MAX_VECS;
const blk_status_t DMRS_CONST_BLK_STS_OK = BLK_STS_OK;
const blk_status_t DMRS_CONST_BLK_STS_IOERR = BLK_STS_IOERR;
const blk_status_t DMRS_CONST_BLK_STS_NOSPC = BLK_STS_NOSPC;
const blk_status_t DMRS_CONST_BLK_STS_NOTSUPP = BLK_STS_NOTSUPP;
const blk_status_t DMRS_CONST_BLK_STS_DM_REQUEUE = BLK_STS_DM_REQUEUE;
/* drivers/md/dm.h, which is private to dm: the flag status() gets for --noflush. */
const unsigned int DMRS_CONST_DM_STATUS_NOFLUSH_FLAG = 1 << 0;
const unsigned long DMRS_CONST_SHRINK_STOP = SHRINK_STOP;

/* drivers/md/dm.h, private to dm but exported (GPL), as C dm-thin uses them. */
void dm_internal_suspend_noflush(struct mapped_device *md);
void dm_internal_resume(struct mapped_device *md);

/* helpers.c */
const char *dmrs_pool_target_name(void);
const char *dmrs_thin_target_name(void);
unsigned int dmrs_no_space_timeout(void);
unsigned long dmrs_metadata_cache_blocks(void);
struct shrinker *dmrs_shrinker_create(const char *name,
				      unsigned long (*count)(struct shrinker *, struct shrink_control *),
				      unsigned long (*scan)(struct shrinker *, struct shrink_control *),
				      void *private_data);
void dmrs_shrinker_free(struct shrinker *s);
void dmrs_bio_set_dev(struct bio *bio, struct block_device *bdev);
struct workqueue_struct *dmrs_alloc_ordered_workqueue(const char *name);
unsigned int dmrs_major(dev_t dev);
unsigned int dmrs_minor(dev_t dev);
sector_t dmrs_bdev_nr_sectors(struct block_device *bdev);
void dmrs_init_work(struct work_struct *work, work_func_t fn);
void dmrs_init_delayed_work(struct delayed_work *dwork, work_func_t fn);
bool dmrs_queue_work(struct workqueue_struct *wq, struct work_struct *work);
bool dmrs_queue_delayed_work_ms(struct workqueue_struct *wq, struct delayed_work *dwork,
				unsigned int msecs);
void dmrs_flush_workqueue(struct workqueue_struct *wq);
struct work_struct *dmrs_delayed_work_work(struct delayed_work *dwork);
unsigned int dmrs_memalloc_noio_save(void);
void dmrs_memalloc_noio_restore(unsigned int flags);
struct file *dmrs_bdev_file_open(dev_t dev, bool write, int *err);
void dmrs_get_file(struct file *f);
struct block_device *dmrs_file_bdev(struct file *f);
void dmrs_fput(struct file *f);
int dmrs_rw_sync(struct block_device *bdev, sector_t sector, void *buf, unsigned int len,
		 bool write, bool fua);
struct bio *dmrs_batch_write_add(struct bio *prev, struct block_device *bdev, sector_t sector,
				 const void *buf, unsigned int len);
int dmrs_batch_wait(struct bio *last);
int dmrs_flush_bdev(struct block_device *bdev);
void dmrs_zero_fill_bio(struct bio *bio);
void dmrs_discard_add(struct block_device *bdev, sector_t sector, sector_t nr, struct bio **last);
void dmrs_discard_end(struct bio *parent, struct bio *last);
void dmrs_dm_log(int level, const char *prefix, const char *msg);
void dmrs_wait_var_zero(unsigned long *count);
void dmrs_wake_up_var(unsigned long *count);
unsigned int dmrs_bdev_max_discard_sectors(struct block_device *bdev);
size_t dmrs_bdev_name(struct block_device *bdev, char *buf, size_t len);
bool dmrs_bdev_discard_supported(struct block_device *bdev);
int dmrs_discard_bdev(struct block_device *bdev, sector_t sector, sector_t nr_sects);
void dmrs_kcopyd_copy(struct dm_kcopyd_client *kc, struct block_device *from, sector_t from_sector,
		      struct block_device *to, sector_t to_sector, sector_t count,
		      dm_kcopyd_notify_fn fn, void *context);
void dmrs_kcopyd_zero(struct dm_kcopyd_client *kc, struct block_device *bdev, sector_t sector,
		      sector_t count, dm_kcopyd_notify_fn fn, void *context);
