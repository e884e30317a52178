package cdc

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// PostgresConfig configures a PostgreSQL source ([NewPostgres]).
type PostgresConfig struct {
	// Name names the source: in logs, in the events' source info, and in
	// the default slot and publication names. Required.
	Name string
	// DSN is how to connect: a URL (postgres://user:pass@host:5432/db) or
	// key=value pairs, as libpq takes them. The user needs the REPLICATION
	// attribute, and the ownership of the tables to create the publication
	// (or an existing publication). Required.
	DSN string
	// Slot is the logical replication slot: created when missing, reused
	// (resumed from) when it exists. Lowercase letters, digits and
	// underscores; default "aegis_" + Name in that alphabet.
	Slot string
	// Publication is the publication the slot reads: created for Tables
	// when missing; when it exists, the tables it lacks are added to it.
	// Default: the slot's name.
	Publication string
	// Tables are the tables whose changes the source reads, and how.
	Tables []TableConfig
	// Snapshot reads the tables' rows (as Read changes) when the slot is
	// created, consistently with the slot's start: every row is in the
	// snapshot or in the stream that follows, never in both, never in
	// neither.
	Snapshot bool
	// StateFile is where the source keeps what the database does not:
	// whether its snapshot is complete, and the last confirmed position
	// (for status). Required.
	StateFile string
	// Config is how changes are batched and shaped.
	Config
	// StatusInterval is how often the source tells the server how far it
	// has acknowledged (the slot's confirmed position, from which a
	// restart resumes), and how often it saves the position in StateFile.
	// Default 1s.
	StatusInterval time.Duration
	// Logger receives the source's warnings (reconnections, tables
	// without a replica identity); nil discards them.
	Logger *slog.Logger
}

// Default names' prefix, and what a slot's name may hold (PostgreSQL's
// rule for replication slots).
const defaultSlotPrefix = "aegis_"

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlot reports whether name can name a replication slot: 1 to 63
// lowercase letters, digits and underscores.
func ValidSlot(name string) bool { return slotName.MatchString(name) }

// publicationName is what a publication name may hold here: it is written
// into the replication command's options, so it keeps to identifiers that
// need no quoting.
var publicationName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidPublication reports whether name can name the source's
// publication: a letter or underscore, then letters, digits or
// underscores, 63 at most.
func ValidPublication(name string) bool { return publicationName.MatchString(name) }

// DefaultSlot returns the slot name of a source named name: "aegis_" and
// the name, lowercased, with characters a slot name cannot hold as '_'.
func DefaultSlot(name string) string {
	b := []byte(defaultSlotPrefix + strings.ToLower(name))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}

func (c PostgresConfig) withDefaults() PostgresConfig {
	if c.Slot == "" {
		c.Slot = DefaultSlot(c.Name)
	}
	if c.Publication == "" {
		c.Publication = c.Slot
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Config = c.Config.withDefaults()
	return c
}

func (c PostgresConfig) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn is empty"))
	}
	if c.StateFile == "" {
		errs = append(errs, errors.New("state file is empty"))
	}
	if c.Slot != "" && !ValidSlot(c.Slot) {
		errs = append(errs, fmt.Errorf("slot %q: want 1 to 63 lowercase letters, digits or underscores", c.Slot))
	}
	if c.Publication != "" && !ValidPublication(c.Publication) {
		errs = append(errs, fmt.Errorf("publication %q: want a letter or underscore, then letters, digits or underscores (at most 63)", c.Publication))
	}
	if err := c.Config.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := validateTables(c.Tables, "public"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
