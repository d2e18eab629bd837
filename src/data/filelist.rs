//! File lists: one `path [label]` per line, the form the SSL-backdoor reference code trains
//! from. Relative paths are relative to the list's folder.

use std::path::{Path, PathBuf};

use burn::data::dataset::InMemDataset;

use super::ImageFile;
use crate::error::{Error, Result};

/// Reads the list at `path`: every line that is not blank becomes an [`ImageFile`] whose id is
/// the path as written, decoded only when read (a missing file is then reported unreadable).
/// A last field that is a whole number is the label; a line with a label must give it on every
/// line, or none may.
pub fn read_filelist(path: &Path) -> Result<InMemDataset<ImageFile>> {
    let text = crate::bounded::read_text(path)?;
    let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut files = Vec::new();
    let mut labelled = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (file, label) = match line.rsplit_once(char::is_whitespace) {
            Some((file, label)) if label.parse::<usize>().is_ok() => (file.trim_end(), label.parse().ok()),
            _ => (line, None),
        };
        if *labelled.get_or_insert(label.is_some()) != label.is_some() {
            return Err(Error::Config(format!(
                "{}: line {} {} a label where the first line {}",
                path.display(),
                n + 1,
                if label.is_some() { "has" } else { "lacks" },
                if label.is_some() { "had none" } else { "had one" }
            )));
        }
        let resolved: PathBuf = if Path::new(file).is_absolute() { file.into() } else { base.join(file) };
        files.push(ImageFile { id: file.to_string(), path: resolved, label });
    }
    if files.is_empty() {
        return Err(Error::EmptyDataset { path: path.to_path_buf() });
    }
    Ok(InMemDataset::new(files))
}

/// The line of a file list that names `file`: its path (absolute when it can be found) and its
/// label where it has one.
pub fn filelist_line(file: &ImageFile) -> String {
    let path = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
    match file.label {
        Some(label) => format!("{} {label}", path.display()),
        None => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::Dataset;

    #[test]
    fn lines_give_paths_relative_to_the_list_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("train.txt");
        std::fs::write(&list, "a/x.png 3\n\n  /abs/y name.jpg 0 \nb.png 12\n").unwrap();
        let files = read_filelist(&list).unwrap();
        let got: Vec<(String, PathBuf, Option<usize>)> =
            files.iter().map(|f| (f.id.clone(), f.path.clone(), f.label)).collect();
        assert_eq!(
            got,
            vec![
                ("a/x.png".into(), dir.path().join("a/x.png"), Some(3)),
                ("/abs/y name.jpg".into(), PathBuf::from("/abs/y name.jpg"), Some(0)),
                ("b.png".into(), dir.path().join("b.png"), Some(12)),
            ]
        );
        assert_eq!(filelist_line(&files.get(1).unwrap()), "/abs/y name.jpg 0");
    }

    #[test]
    fn mixed_labels_and_empty_lists_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("l.txt");
        std::fs::write(&list, "a.png 1\nb.png\n").unwrap();
        assert!(matches!(read_filelist(&list), Err(Error::Config(m)) if m.contains("line 2")));
        std::fs::write(&list, "\n \n").unwrap();
        assert!(matches!(read_filelist(&list), Err(Error::EmptyDataset { .. })));
        assert!(matches!(read_filelist(&dir.path().join("none.txt")), Err(Error::Io { .. })));
    }
}
