package flexserver

import (
	"context"
	"time"

	"github.com/pgflex/pgflex/internal/store"
)

// Automatic backups and retention: a full backup per server every BackupInterval (pgBackRest
// expires what the retention no longer needs after each), a full backup into repository 2
// after its pause, and, once the retention of a deleted server has passed, the removal of its
// repositories and wrapped backup DEKs.

// droppedServer is what remains of a deleted server during its retention: its record without
// the data DEK (crypto-shredded) but with its wrapped backup DEKs, so that it can be restored.
type droppedServer struct {
	Server    Server    `json:"server"`
	DeletedAt time.Time `json:"deletedAt"`
}

func droppedKey(uid string) string { return "pgdropped/" + uid }

// retainedUntil is when a deleted server's backups are removed.
func (d *droppedServer) retainedUntil() time.Time {
	return d.DeletedAt.Add(time.Duration(d.Server.BackupRetentionDays) * 24 * time.Hour)
}

// forgetBackups removes a server's repositories and backup records (a rolled-back create, or a
// deleted server whose retention has ended).
func (s *Service) forgetBackups(ctx context.Context, inst Instance) error {
	if err := s.dp.RemoveBackups(ctx, inst.UID, inst.Location, inst.GeoLocation); err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		keys, err := tx.List(backupPrefix(inst.UID))
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(k.Key); err != nil {
				return err
			}
		}
		return tx.Delete(droppedKey(inst.UID))
	})
}

// RunBackupScheduler takes automatic backups and applies the retention of deleted servers,
// checking every tick until ctx ends.
func (s *Service) RunBackupScheduler(ctx context.Context, tick time.Duration) {
	s.refreshBackupConfigs(ctx)
	for {
		s.scheduleBackups(ctx)
		s.expireDropped(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
	}
}

// refreshBackupConfigs rewrites every server's backup configuration from its record once at
// start: a crash between a geo-key status change and its reconfiguration, under a PostgreSQL
// that outlived the daemon, would otherwise leave repository 2 paused or not as it was.
func (s *Service) refreshBackupConfigs(ctx context.Context) {
	servers, err := s.listServers(ctx)
	if err != nil {
		s.log.Error("backup configuration: list servers", "err", err)
		return
	}
	for i := range servers {
		srv := &servers[i]
		if srv.BackupEnvelope == nil || srv.State == StateProvisioning || srv.State == StateDropping {
			continue
		}
		if err := s.dp.ConfigureBackups(ctx, srv.instance()); err != nil {
			s.log.Warn("backup configuration", "server", srv.Name, "err", err)
		}
	}
}

// scheduleBackups takes the automatic backups that are due.
func (s *Service) scheduleBackups(ctx context.Context) {
	servers, err := s.listServers(ctx)
	if err != nil {
		s.log.Error("backup scheduler: list servers", "err", err)
		return
	}
	for i := range servers {
		srv := &servers[i]
		if ctx.Err() != nil {
			return
		}
		due := s.now().Sub(srv.LastAutomaticBackup) >= s.cfg.BackupInterval || (srv.GeoBackupDue && !srv.instance().GeoPaused)
		if !due || srv.BackupEnvelope == nil || srv.State != StateReady || srv.Operation != "" {
			continue
		}
		pp, err := s.backupPassphrases(ctx, srv, "automatic backup")
		if err != nil {
			s.log.Warn("backup scheduler: keys unusable; backup postponed", "server", srv.Name, "err", err)
			continue
		}
		if _, err := s.takeBackup(ctx, srv, pp, "", backupSourceAutomatic); err != nil && ctx.Err() == nil {
			s.log.Warn("backup scheduler: automatic backup failed; retried at the next tick", "server", srv.Name, "err", err)
		}
		pp.Wipe()
	}
}

// expireDropped removes the backups of deleted servers whose retention has ended.
func (s *Service) expireDropped(ctx context.Context) {
	var dropped []droppedServer
	if err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		dropped, err = store.ListJSON[droppedServer](tx, "pgdropped/")
		return err
	}); err != nil {
		s.log.Error("backup retention: list deleted servers", "err", err)
		return
	}
	for i := range dropped {
		d := &dropped[i]
		if s.now().Before(d.retainedUntil()) {
			continue
		}
		if err := s.forgetBackups(ctx, d.Server.instance()); err != nil {
			s.log.Warn("backup retention: remove the backups of a deleted server", "server", d.Server.Name, "err", err)
			continue
		}
		s.log.Info("backups of a deleted server removed at the end of their retention", "server", d.Server.Name, "uid", d.Server.UID)
	}
}
